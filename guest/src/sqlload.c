/* A real application under load: SQLite (statically linked) doing a deterministic mix of
 * inserts, updates, deletes and queries in transactions on a database in the guest's RAM
 * (initramfs rootfs is tmpfs-like). Every --check-every batches it prints
 *   SQL <batch> rows=<n> sum=<16 hex digits>
 * where sum is an FNV-1a hash over the whole table (ordered by id) and the query results so far.
 * The PRNG is seeded, so running the same binary on the host with --batches <b> --db :memory:
 * prints the same sum for batch b: a test compares the guest's line after migration against it.
 * With --batches N it stops after N batches and prints "SQL DONE <batch> rows=<n> sum=<hex>".
 * --preload R bulk-inserts R rows first (part of the deterministic sequence: pass it on the host too). */
#include "common.h"
#include <sqlite3.h>

static sqlite3 *db;

static void die(const char *what) {
  say("SQL ERROR %s: %s", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

static sqlite3_stmt *prep(const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(sql);
  return st;
}

static void exec(const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die(sql);
}

static void step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) die("step");
  sqlite3_reset(st);
}

static uint64_t table_hash(sqlite3_stmt *scan, uint64_t h, long long *rows) {
  *rows = 0;
  while (sqlite3_step(scan) == SQLITE_ROW) {
    for (int c = 0; c < 4; c++) {
      const unsigned char *t = sqlite3_column_text(scan, c);
      int n = sqlite3_column_bytes(scan, c);
      h = fnv1a(h, t ? t : (const unsigned char *)"", (size_t)n);
      h = fnv1a(h, "|", 1);
    }
    (*rows)++;
  }
  sqlite3_reset(scan);
  return h;
}

static void insert_row(sqlite3_stmt *ins, uint64_t *s, unsigned char *text) {
  char key[32];
  snprintf(key, sizeof key, "key-%06llu", (unsigned long long)rng_below(s, 1000000));
  size_t len = 64 + (size_t)rng_below(s, 320);
  fill_text(s, text, len);
  sqlite3_bind_text(ins, 1, key, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(ins, 2, (const char *)text, (int)len, SQLITE_TRANSIENT);
  sqlite3_bind_int64(ins, 3, (sqlite3_int64)rng_below(s, 100000));
  step_done(ins);
}

int main(int argc, char **argv) {
  const char *path = arg_str(argc, argv, "db", "/tmp/cloudnet.db");
  long long batches = (long long)arg_num(argc, argv, "batches", 0);
  int ops = (int)arg_num(argc, argv, "ops-per-batch", 200);
  int check_every = (int)arg_num(argc, argv, "check-every", 10);
  long long rows_max = (long long)arg_num(argc, argv, "rows-max", 20000);
  long long preload = (long long)arg_num(argc, argv, "preload", 0);
  unsigned pause_ms = (unsigned)arg_num(argc, argv, "pause-ms", 50);
  uint64_t seed = (uint64_t)arg_num(argc, argv, "seed", 1);
  if (check_every < 1) check_every = 1;

  if (strcmp(path, ":memory:") != 0) unlink(path);
  if (sqlite3_open(path, &db) != SQLITE_OK) die("open");
  exec("PRAGMA journal_mode=MEMORY; PRAGMA synchronous=OFF; PRAGMA cache_size=-16384;"
       "CREATE TABLE kv(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL, n INTEGER NOT NULL);"
       "CREATE INDEX kv_k ON kv(k);");
  sqlite3_stmt *ins = prep("INSERT INTO kv(k, v, n) VALUES(?, ?, ?)");
  sqlite3_stmt *pick = prep("SELECT id FROM kv WHERE id >= ? ORDER BY id LIMIT 1");
  sqlite3_stmt *upd = prep("UPDATE kv SET n = n + ?, v = substr(v, 1, ?) || ? WHERE id = ?");
  sqlite3_stmt *del = prep("DELETE FROM kv WHERE id = ?");
  sqlite3_stmt *qry = prep("SELECT count(*), coalesce(sum(n), 0), coalesce(max(length(v)), 0) FROM kv "
                           "WHERE k >= ? AND k < ?");
  sqlite3_stmt *cnt = prep("SELECT count(*), coalesce(max(id), 0) FROM kv");
  sqlite3_stmt *scan = prep("SELECT id, k, v, n FROM kv ORDER BY id");

  uint64_t s = rng_seed(seed), qhash = FNV_INIT;
  unsigned char text[512];
  char key[32], key2[32];
  long long rows = 0, max_id = 0;
  if (preload > 0) {
    /* Batch 0: bulk rows so the database has a realistic working set before the load starts. */
    exec("BEGIN");
    for (long long i = 0; i < preload; i++) insert_row(ins, &s, text);
    exec("COMMIT");
    rows = preload;
    max_id = sqlite3_last_insert_rowid(db);
  }
  say("SQL READY db=%s ops_per_batch=%d rows_max=%lld preload=%lld seed=%llu", path, ops, rows_max, preload,
      (unsigned long long)seed);
  for (long long b = 1; batches == 0 || b <= batches; b++) {
    exec("BEGIN");
    for (int o = 0; o < ops; o++) {
      unsigned r = (unsigned)rng_below(&s, 100);
      if (r < 50 && rows >= rows_max) r = 60; /* full: delete instead of insert */
      if (r < 50 || rows == 0) {
        insert_row(ins, &s, text);
        rows++;
        max_id = sqlite3_last_insert_rowid(db);
        continue;
      }
      sqlite3_bind_int64(pick, 1, (sqlite3_int64)(1 + rng_below(&s, (uint64_t)max_id)));
      long long id = sqlite3_step(pick) == SQLITE_ROW ? sqlite3_column_int64(pick, 0) : -1;
      sqlite3_reset(pick);
      if (r < 75) {
        size_t len = 8 + (size_t)rng_below(&s, 56);
        fill_text(&s, text, len);
        sqlite3_bind_int64(upd, 1, (sqlite3_int64)rng_below(&s, 1000));
        sqlite3_bind_int(upd, 2, 32 + (int)rng_below(&s, 200));
        sqlite3_bind_text(upd, 3, (const char *)text, (int)len, SQLITE_TRANSIENT);
        sqlite3_bind_int64(upd, 4, id);
        step_done(upd);
      } else if (r < 85) {
        if (id < 0) continue;
        sqlite3_bind_int64(del, 1, id);
        step_done(del);
        if (sqlite3_changes(db) > 0) rows--;
      } else {
        unsigned long long a = rng_below(&s, 1000000);
        snprintf(key, sizeof key, "key-%06llu", a);
        snprintf(key2, sizeof key2, "key-%06llu", a + 20000);
        sqlite3_bind_text(qry, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(qry, 2, key2, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(qry) == SQLITE_ROW) {
          long long v[3] = {sqlite3_column_int64(qry, 0), sqlite3_column_int64(qry, 1), sqlite3_column_int64(qry, 2)};
          qhash = fnv1a(qhash, v, sizeof v);
        }
        sqlite3_reset(qry);
      }
    }
    exec("COMMIT");
    if (b % check_every == 0 || b == batches) {
      long long n = 0;
      uint64_t h = table_hash(scan, qhash, &n);
      if (sqlite3_step(cnt) == SQLITE_ROW && sqlite3_column_int64(cnt, 0) != n) die("row count mismatch");
      sqlite3_reset(cnt);
      say("SQL %s%lld rows=%lld sum=%016llx", b == batches ? "DONE " : "", b, n, (unsigned long long)h);
    }
    if (pause_ms && (batches == 0 || b < batches)) usleep(pause_ms * 1000u);
  }
  sqlite3_close(db);
  return 0;
}
