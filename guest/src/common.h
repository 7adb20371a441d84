/* Shared helpers for the CloudNet guest workloads: a deterministic PRNG (so a host run of the same
 * program reproduces the guest's results bit for bit), monotonic time, rate pacing and line output
 * with one write() per line (so lines from concurrent workloads never interleave mid-line on the
 * serial console). */
#ifndef CLOUDNET_COMMON_H
#define CLOUDNET_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* xorshift64*: tiny, fast, deterministic across machines. */
static inline uint64_t rng_next(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t rng_seed(uint64_t seed) { return seed ? seed * 0x9E3779B97F4A7C15ULL : 0x1234567ULL; }

static inline uint64_t rng_below(uint64_t *s, uint64_t n) { return n ? rng_next(s) % n : 0; }

static inline uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void sleep_until_ns(uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* Print one line with a single write(2). */
static inline void say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = write(1, buf + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += w;
  }
}

/* FNV-1a 64, used for the verifiable checksums printed by the workloads. */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

/* "--name=value" / "--name value" argument lookup; returns def when absent. */
static inline const char *arg_str(int argc, char **argv, const char *name, const char *def) {
  size_t n = strlen(name);
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--", 2) != 0 || strncmp(argv[i] + 2, name, n) != 0) continue;
    const char *rest = argv[i] + 2 + n;
    if (*rest == '=') return rest + 1;
    if (*rest == 0 && i + 1 < argc) return argv[i + 1];
  }
  return def;
}

static inline double arg_num(int argc, char **argv, const char *name, double def) {
  const char *s = arg_str(argc, argv, name, NULL);
  return s ? strtod(s, NULL) : def;
}

/* Words for text-like pages: text compresses like real guest page cache / heap strings do. */
static const char *const WORDS[] = {
    "the", "migration", "of", "virtual", "machine", "memory", "across", "a", "wide", "area", "network",
    "page", "dirty", "round", "kernel", "buffer", "cache", "request", "response", "server", "client",
    "database", "index", "table", "row", "column", "query", "update", "insert", "delete", "commit",
    "log", "error", "warning", "info", "debug", "user", "session", "token", "value", "key", "node",
    "cluster", "storage", "volume", "snapshot", "replica", "primary", "secondary", "timeout",
    "retry", "backoff", "latency", "bandwidth", "throughput", "packet", "socket", "stream", "json",
    "{\"id\":", "\"name\":", "\"status\":", "\"ok\"", "</div>", "<span>", "GET", "POST", "/api/v1/",
    "HTTP/1.1", "200", "404", "2026-11-25T09:30:00Z", "0x7ffd", "NULL", "true", "false", "and", "or",
    "with", "from", "into", "where", "select", "order", "by", "limit", "group", "having", "join",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

/* Fill buf with space-separated words (and newlines) chosen by the PRNG. */
static inline void fill_text(uint64_t *s, unsigned char *buf, size_t n) {
  size_t i = 0;
  while (i < n) {
    const char *w = WORDS[rng_below(s, NWORDS)];
    size_t l = strlen(w);
    for (size_t j = 0; j < l && i < n; j++) buf[i++] = (unsigned char)w[j];
    if (i < n) buf[i++] = (rng_below(s, 12) == 0) ? '\n' : ' ';
  }
}

static inline void fill_random(uint64_t *s, unsigned char *buf, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng_next(s);
    memcpy(buf + i, &v, 8);
  }
  for (; i < n; i++) buf[i] = (unsigned char)rng_next(s);
}

#endif
