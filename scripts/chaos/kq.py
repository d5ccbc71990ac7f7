"""Kafka queries for scripts/chaos.sh through librdkafka (ctypes): end offsets, a group's
committed offsets and partition leaders. The same calls work against the embedded/mock broker
and a real cluster, and need nothing beyond the librdkafka the build already uses."""
import ctypes
import ctypes.util

_lib = ctypes.CDLL(ctypes.util.find_library("rdkafka") or "librdkafka.so.1")


class _TP(ctypes.Structure):
    _fields_ = [("topic", ctypes.c_char_p), ("partition", ctypes.c_int32), ("offset", ctypes.c_int64),
                ("metadata", ctypes.c_void_p), ("metadata_size", ctypes.c_size_t),
                ("opaque", ctypes.c_void_p), ("err", ctypes.c_int), ("_private", ctypes.c_void_p)]


class _TPList(ctypes.Structure):
    _fields_ = [("cnt", ctypes.c_int), ("size", ctypes.c_int), ("elems", ctypes.POINTER(_TP))]


class _MBroker(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int32), ("host", ctypes.c_char_p), ("port", ctypes.c_int)]


class _MPart(ctypes.Structure):
    _fields_ = [("id", ctypes.c_int32), ("err", ctypes.c_int), ("leader", ctypes.c_int32),
                ("replica_cnt", ctypes.c_int), ("replicas", ctypes.POINTER(ctypes.c_int32)),
                ("isr_cnt", ctypes.c_int), ("isrs", ctypes.POINTER(ctypes.c_int32))]


class _MTopic(ctypes.Structure):
    _fields_ = [("topic", ctypes.c_char_p), ("partition_cnt", ctypes.c_int),
                ("partitions", ctypes.POINTER(_MPart)), ("err", ctypes.c_int)]


class _Meta(ctypes.Structure):
    _fields_ = [("broker_cnt", ctypes.c_int), ("brokers", ctypes.POINTER(_MBroker)),
                ("topic_cnt", ctypes.c_int), ("topics", ctypes.POINTER(_MTopic)),
                ("orig_broker_id", ctypes.c_int32), ("orig_broker_name", ctypes.c_char_p)]


_lib.rd_kafka_conf_new.restype = ctypes.c_void_p
_lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
_lib.rd_kafka_new.restype = ctypes.c_void_p
_lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
_lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
_lib.rd_kafka_topic_partition_list_new.restype = ctypes.POINTER(_TPList)
_lib.rd_kafka_topic_partition_list_add.argtypes = [ctypes.POINTER(_TPList), ctypes.c_char_p, ctypes.c_int32]
_lib.rd_kafka_topic_partition_list_add.restype = ctypes.POINTER(_TP)
_lib.rd_kafka_topic_partition_list_destroy.argtypes = [ctypes.POINTER(_TPList)]
_lib.rd_kafka_committed.argtypes = [ctypes.c_void_p, ctypes.POINTER(_TPList), ctypes.c_int]
_lib.rd_kafka_query_watermark_offsets.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                                  ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
_lib.rd_kafka_metadata.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.POINTER(_Meta)), ctypes.c_int]
_lib.rd_kafka_metadata_destroy.argtypes = [ctypes.POINTER(_Meta)]
_lib.rd_kafka_err2str.restype = ctypes.c_char_p


class KafkaError(Exception):
    pass


class Client:
    """One consumer handle (never subscribes) per group; query methods raise KafkaError."""

    def __init__(self, bootstrap, group="chaos-query", extra=None):
        conf = _lib.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        settings = {"bootstrap.servers": bootstrap, "group.id": group, "log_level": "0"}
        settings.update(extra or {})
        for k, v in settings.items():
            if _lib.rd_kafka_conf_set(conf, k.encode(), str(v).encode(), err, 512) != 0:
                raise KafkaError("%s: %s" % (k, err.value.decode()))
        self.rk = _lib.rd_kafka_new(1, conf, err, 512)  # RD_KAFKA_CONSUMER
        if not self.rk:
            raise KafkaError(err.value.decode())

    def close(self):
        if self.rk:
            _lib.rd_kafka_destroy(self.rk)
            self.rk = None

    def metadata(self, topic=None):
        """{topic: {partition: (leader, [replicas], [isr])}}, {broker_id: "host:port"}"""
        mp = ctypes.POINTER(_Meta)()
        e = _lib.rd_kafka_metadata(self.rk, 1, None, ctypes.byref(mp), 10000)
        if e:
            raise KafkaError("metadata: " + _lib.rd_kafka_err2str(e).decode())
        try:
            m = mp.contents
            brokers = {m.brokers[i].id: "%s:%d" % (m.brokers[i].host.decode(), m.brokers[i].port)
                       for i in range(m.broker_cnt)}
            topics = {}
            for i in range(m.topic_cnt):
                t = m.topics[i]
                name = t.topic.decode()
                if topic and name != topic:
                    continue
                parts = {}
                for j in range(t.partition_cnt):
                    p = t.partitions[j]
                    parts[p.id] = (p.leader, [p.replicas[k] for k in range(p.replica_cnt)],
                                   [p.isrs[k] for k in range(p.isr_cnt)])
                topics[name] = parts
            return topics, brokers
        finally:
            _lib.rd_kafka_metadata_destroy(mp)

    def end_offsets(self, topic, partitions, timeout_ms=10000):
        out = {}
        for p in range(partitions):
            lo, hi = ctypes.c_int64(), ctypes.c_int64()
            e = _lib.rd_kafka_query_watermark_offsets(self.rk, topic.encode(), p, ctypes.byref(lo),
                                                      ctypes.byref(hi), timeout_ms)
            if e:
                raise KafkaError("watermarks %s[%d]: %s" % (topic, p, _lib.rd_kafka_err2str(e).decode()))
            out[p] = hi.value
        return out

    def committed(self, topic, partitions, timeout_ms=10000):
        """{partition: offset}; -1001 (RD_KAFKA_OFFSET_INVALID) when the group has none."""
        lst = _lib.rd_kafka_topic_partition_list_new(partitions)
        try:
            for p in range(partitions):
                _lib.rd_kafka_topic_partition_list_add(lst, topic.encode(), p)
            e = _lib.rd_kafka_committed(self.rk, lst, timeout_ms)
            if e:
                raise KafkaError("committed: " + _lib.rd_kafka_err2str(e).decode())
            l = lst.contents
            return {l.elems[i].partition: l.elems[i].offset for i in range(l.cnt)}
        finally:
            _lib.rd_kafka_topic_partition_list_destroy(lst)
