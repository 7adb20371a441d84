/* Memory writer: a working set of --wss-mb MiB made of a tunable mix of page kinds, of which
 * --dirty-mbps MB/s worth of pages are re-dirtied. Each dirtying rewrites only a small span
 * (--span bytes) of the page, so a page re-sent in a later pre-copy round differs only slightly
 * from the copy sent before: that is what XOR/XBZRLE deltas exploit.
 *
 * Page kinds (--mix zero:20,dup:20,random:20,text:40, weights in any unit):
 *   zero   - all-zero pages, rewritten with zeros (dirty but still zero);
 *   dup    - copies of one of --dup-templates template pages, rewritten with the same bytes;
 *   random - incompressible bytes, a span replaced by new random bytes;
 *   text   - text-like words, a span replaced by other words.
 * Prints "MW READY ..." once the working set is filled and "MW <seconds> <pages dirtied>" every
 * --report-s seconds. */
#include "common.h"
#include <sys/mman.h>

#define PAGE 4096
enum { K_ZERO, K_DUP, K_RANDOM, K_TEXT, K_N };
static const char *const KIND_NAMES[K_N] = {"zero", "dup", "random", "text"};

static void parse_mix(const char *mix, double w[K_N]) {
  for (int k = 0; k < K_N; k++) w[k] = 0;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", mix);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
    char *colon = strchr(tok, ':');
    if (!colon) continue;
    *colon = 0;
    for (int k = 0; k < K_N; k++)
      if (strcmp(tok, KIND_NAMES[k]) == 0) w[k] = strtod(colon + 1, NULL);
  }
}

int main(int argc, char **argv) {
  size_t wss_mb = (size_t)arg_num(argc, argv, "wss-mb", 64);
  double dirty_mbps = arg_num(argc, argv, "dirty-mbps", 12);
  size_t span = (size_t)arg_num(argc, argv, "span", 64);
  unsigned templates = (unsigned)arg_num(argc, argv, "dup-templates", 16);
  uint64_t seed = (uint64_t)arg_num(argc, argv, "seed", 1);
  unsigned tick_ms = (unsigned)arg_num(argc, argv, "tick-ms", 10);
  unsigned report_s = (unsigned)arg_num(argc, argv, "report-s", 5);
  const char *mix = arg_str(argc, argv, "mix", "zero:20,dup:20,random:20,text:40");
  if (span < 1) span = 1;
  if (span > PAGE) span = PAGE;
  if (templates < 1) templates = 1;
  if (tick_ms < 1) tick_ms = 1;

  double w[K_N];
  parse_mix(mix, w);
  double wsum = 0;
  for (int k = 0; k < K_N; k++) wsum += w[k];
  if (wsum <= 0) {
    w[K_TEXT] = 1;
    wsum = 1;
  }

  size_t npages = wss_mb * 1024 * 1024 / PAGE;
  unsigned char *mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  unsigned char *kind = malloc(npages);
  unsigned char *tmpl = malloc((size_t)templates * PAGE);
  uint32_t *tmpl_of = malloc(npages * sizeof *tmpl_of);
  if (mem == MAP_FAILED || !kind || !tmpl || !tmpl_of) {
    say("MW ERROR cannot allocate %zu MiB", wss_mb);
    return 1;
  }
  uint64_t s = rng_seed(seed);
  for (unsigned t = 0; t < templates; t++) {
    if (t % 2) fill_random(&s, tmpl + (size_t)t * PAGE, PAGE);
    else fill_text(&s, tmpl + (size_t)t * PAGE, PAGE);
  }
  size_t count[K_N] = {0};
  for (size_t i = 0; i < npages; i++) {
    double r = (double)(rng_next(&s) >> 11) / 9007199254740992.0 * wsum;
    int k = 0;
    while (k < K_N - 1 && r >= w[k]) r -= w[k++];
    kind[i] = (unsigned char)k;
    count[k]++;
    unsigned char *p = mem + i * PAGE;
    switch (k) {
    case K_ZERO: memset(p, 0, PAGE); break;
    case K_DUP:
      tmpl_of[i] = (uint32_t)rng_below(&s, templates);
      memcpy(p, tmpl + (size_t)tmpl_of[i] * PAGE, PAGE);
      break;
    case K_RANDOM: fill_random(&s, p, PAGE); break;
    default: fill_text(&s, p, PAGE); break;
    }
  }
  say("MW READY wss_mb=%zu pages=%zu zero=%zu dup=%zu random=%zu text=%zu dirty_mbps=%.1f span=%zu", wss_mb,
      npages, count[K_ZERO], count[K_DUP], count[K_RANDOM], count[K_TEXT], dirty_mbps, span);

  double pages_per_tick = dirty_mbps * 1e6 / PAGE * tick_ms / 1000.0;
  double carry = 0;
  uint64_t dirtied = 0, t0 = now_ms(), next_report = t0 + report_s * 1000ull;
  uint64_t next = now_ns();
  unsigned char spanbuf[PAGE];
  for (;;) {
    carry += pages_per_tick;
    size_t n = (size_t)carry;
    carry -= (double)n;
    for (size_t j = 0; j < n; j++) {
      size_t i = (size_t)rng_below(&s, npages);
      size_t off = (size_t)rng_below(&s, PAGE - span + 1);
      unsigned char *p = mem + i * PAGE + off;
      switch (kind[i]) {
      case K_ZERO: memset(p, 0, span); break;
      case K_DUP: memcpy(p, tmpl + (size_t)tmpl_of[i] * PAGE + off, span); break;
      case K_RANDOM: fill_random(&s, spanbuf, span); memcpy(p, spanbuf, span); break;
      default: fill_text(&s, spanbuf, span); memcpy(p, spanbuf, span); break;
      }
      dirtied++;
    }
    uint64_t t = now_ms();
    if (report_s && t >= next_report) {
      say("MW %llu %llu", (unsigned long long)((t - t0) / 1000), (unsigned long long)dirtied);
      next_report += report_s * 1000ull;
    }
    next += (uint64_t)tick_ms * 1000000ull;
    uint64_t tn = now_ns();
    if (next < tn) next = tn;
    sleep_until_ns(next);
  }
}
