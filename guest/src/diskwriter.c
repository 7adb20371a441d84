/* Disk writer: writes recognisable 4 KiB blocks to a block device (the guest's virtio disk) at
 * --mbps MB/s, pass after pass. Block <b> of pass <g> holds the header
 *   "CLOUDNET-DISK blk=<b> gen=<g> seed=<s>\n"
 * followed by deterministic filler (text-like for 3 of 4 blocks, random for the rest), so its
 * content is a pure function of (seed, b, g). After each pass it syncs, reads everything back
 * with O_DIRECT and prints
 *   DISK <g> blocks=<n> sum=<16 hex digits> ok|BAD=<count>
 * With --passes P it stops after P passes ("DISK DONE ..."). On the host, --verify reads a raw
 * image and checks that every block is a valid block of pass g or g+1 written in order:
 *   DISK VERIFY ok gen=<g> progress=<blocks of pass g+1> sum=<hex>   (sum equals the guest's after a full pass) */
#include "common.h"
#include <fcntl.h>

#define BLK 4096

static void expected_block(uint64_t seed, uint64_t b, uint64_t g, unsigned char *out) {
  uint64_t s = rng_seed(seed ^ (b * 0x9E3779B97F4A7C15ULL) ^ (g << 40) ^ 0xD15C);
  int h = snprintf((char *)out, BLK, "CLOUDNET-DISK blk=%08llu gen=%08llu seed=%llu\n", (unsigned long long)b,
                   (unsigned long long)g, (unsigned long long)seed);
  if (b % 4 == 3) fill_random(&s, out + h, BLK - (size_t)h);
  else fill_text(&s, out + h, BLK - (size_t)h);
}

/* Parse the generation from a block header; 0 for an all-zero (never written) block, -1 if garbage. */
static long long block_gen(const unsigned char *p, uint64_t b) {
  unsigned long long bb, g, sd;
  if (sscanf((const char *)p, "CLOUDNET-DISK blk=%llu gen=%llu seed=%llu", &bb, &g, &sd) == 3 && bb == b)
    return (long long)g;
  for (int i = 0; i < BLK; i++)
    if (p[i]) return -1;
  return 0;
}

static int verify(const char *dev, uint64_t blocks, uint64_t seed) {
  int fd = open(dev, O_RDONLY);
  if (fd < 0) {
    say("DISK VERIFY BAD cannot open %s", dev);
    return 1;
  }
  static unsigned char got[BLK], want[BLK];
  long long first = -2;
  uint64_t progress = 0, h = FNV_INIT;
  for (uint64_t b = 0; b < blocks; b++) {
    if (pread(fd, got, BLK, (off_t)(b * BLK)) != BLK) {
      say("DISK VERIFY BAD short read at blk=%llu", (unsigned long long)b);
      return 1;
    }
    long long g = block_gen(got, b);
    if (g < 0) {
      say("DISK VERIFY BAD garbage at blk=%llu", (unsigned long long)b);
      return 1;
    }
    if (g > 0) {
      expected_block(seed, b, (uint64_t)g, want);
      if (memcmp(got, want, BLK) != 0) {
        say("DISK VERIFY BAD content of blk=%llu gen=%lld", (unsigned long long)b, g);
        return 1;
      }
    }
    if (first == -2) first = g;
    if (g == first && progress == b) progress++;
    else if (!(g + 1 == first && progress < b + 1)) {
      say("DISK VERIFY BAD out-of-order blk=%llu gen=%lld first=%lld", (unsigned long long)b, g, first);
      return 1;
    }
    h = fnv1a(h, got, BLK);
  }
  /* blocks [0,progress) carry generation `first`; the rest carry first-1 (or all carry `first`). */
  long long gen = progress == blocks ? first : first - 1;
  say("DISK VERIFY ok gen=%lld progress=%llu sum=%016llx", gen, (unsigned long long)(progress == blocks ? 0 : progress),
      (unsigned long long)h);
  return 0;
}

int main(int argc, char **argv) {
  const char *dev = arg_str(argc, argv, "dev", "/dev/vda");
  uint64_t blocks = (uint64_t)arg_num(argc, argv, "blocks", 4096);
  double mbps = arg_num(argc, argv, "mbps", 2);
  long long passes = (long long)arg_num(argc, argv, "passes", 0);
  uint64_t seed = (uint64_t)arg_num(argc, argv, "seed", 1);
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--verify") == 0) return verify(dev, blocks, seed);

  int fd = open(dev, O_RDWR | O_DIRECT | O_SYNC);
  if (fd < 0) fd = open(dev, O_RDWR); /* O_DIRECT unsupported (e.g. tmpfs file on the host) */
  if (fd < 0) {
    say("DISK ERROR cannot open %s", dev);
    return 1;
  }
  unsigned char *buf, *want;
  if (posix_memalign((void **)&buf, BLK, BLK) || posix_memalign((void **)&want, BLK, BLK)) return 1;
  say("DISK READY dev=%s blocks=%llu mbps=%.1f seed=%llu", dev, (unsigned long long)blocks, mbps,
      (unsigned long long)seed);
  uint64_t gap_ns = mbps > 0 ? (uint64_t)(BLK / (mbps * 1e6) * 1e9) : 0;
  uint64_t next = now_ns();
  for (long long g = 1; passes == 0 || g <= passes; g++) {
    for (uint64_t b = 0; b < blocks; b++) {
      expected_block(seed, b, (uint64_t)g, buf);
      if (pwrite(fd, buf, BLK, (off_t)(b * BLK)) != BLK) {
        say("DISK ERROR write blk=%llu", (unsigned long long)b);
        return 1;
      }
      if (gap_ns) {
        next += gap_ns;
        uint64_t t = now_ns();
        if (next < t) next = t;
        sleep_until_ns(next);
      }
    }
    fdatasync(fd);
    uint64_t h = FNV_INIT, bad = 0;
    for (uint64_t b = 0; b < blocks; b++) {
      if (pread(fd, buf, BLK, (off_t)(b * BLK)) != BLK) bad++;
      expected_block(seed, b, (uint64_t)g, want);
      if (memcmp(buf, want, BLK) != 0) bad++;
      h = fnv1a(h, buf, BLK);
    }
    char status[32];
    if (bad) snprintf(status, sizeof status, "BAD=%llu", (unsigned long long)bad);
    else snprintf(status, sizeof status, "ok");
    say("DISK %s%lld blocks=%llu sum=%016llx %s", passes && g == passes ? "DONE " : "", g, (unsigned long long)blocks,
        (unsigned long long)h, status);
  }
  return 0;
}
