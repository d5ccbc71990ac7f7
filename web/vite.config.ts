/// <reference types="vitest/config" />
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

// The supervisor serves dist/ under /ui/ and its APIs at the root (/api, /connectors, /metrics).
// `npm run dev` proxies those to a running sluice (SLUICE_URL, default http://127.0.0.1:8083).
const sluice = process.env.SLUICE_URL ?? 'http://127.0.0.1:8083';

export default defineConfig({
  base: '/ui/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: {
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        generator: resolve(import.meta.dirname, 'generator.html'),
      },
    },
  },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/api': sluice,
      '/connectors': sluice,
      '/metrics': sluice,
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
