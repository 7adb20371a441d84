/* Liveness beacon: prints "HB <n> <uptime_ms>" every --interval-ms (default 100) to stdout, which
 * the init script points at the serial console. Tests timestamp these lines on the host: the
 * counter must never go backwards across a migration, and the largest gap between two lines is
 * the pause the guest's users would have seen. */
#include "common.h"

int main(int argc, char **argv) {
  uint64_t interval = (uint64_t)arg_num(argc, argv, "interval-ms", 100);
  if (interval < 10) interval = 10;
  uint64_t next = now_ns();
  for (uint64_t n = 1;; n++) {
    say("HB %llu %llu", (unsigned long long)n, (unsigned long long)now_ms());
    next += interval * 1000000ull;
    uint64_t t = now_ns();
    if (next < t) next = t; /* after a pause (migration downtime) do not burst to catch up */
    sleep_until_ns(next);
  }
}
