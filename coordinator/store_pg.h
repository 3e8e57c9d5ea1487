/*
 * store_pg.h: the store's PostgreSQL connection lent to other statement
 * files (ratelimit_pg.c), with store_pg.c's bounded call: sent without
 * blocking, answered within 3 s or the connection is dropped and rebuilt
 * in the background, failing at once meanwhile (docs/scale-out.md).
 */

#ifndef STORE_PG_H
#define STORE_PG_H

#include <libpq-fe.h>

/* 1 when the store is PostgreSQL (open), else 0. */
int store_pg_in_use(void);

/*
 * Runs one statement with text parameters on the store's connection.
 * Returns the result (rows or none) for the caller to PQclear, or NULL
 * after logging (a statement error, no answer in time), or without a log
 * while the connection is being rebuilt or the store is not PostgreSQL.
 */
PGresult *store_pg_exec(const char *what, const char *sql, int n, const char *const *vals);

#endif /* STORE_PG_H */
