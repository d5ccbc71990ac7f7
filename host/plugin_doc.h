/* plugin_doc.h — a stage's config table as Markdown (the table of its README). */
#ifndef SL_HOST_PLUGIN_DOC_H
#define SL_HOST_PLUGIN_DOC_H

#include "loader.h"
#include "util.h"

/** Appends the config table of `d`: | key | type | default | description |, one row per key. */
void plugin_doc_markdown(const sl_stage_desc *d, sl_buf *b);

#endif
