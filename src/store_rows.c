// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * store_rows.c - snapshot and generation rows and the changed-block words.
 *
 * A snapshot row closes the open generation and opens the next one in the
 * same transaction, so the snapshots and the generations never disagree.
 * A generation's bitmap is stored as 64-block words (cbt), ORed in by the
 * group commit (store_insert_word) or replaced by ranges; dropping a bitmap
 * keeps its generation row, marked dropped.
 *
 * Locking: everything goes through the write connection under db_lock,
 * but store_for_each_cbt_word, which reads through the read connection
 * under rdb_lock and calls its callback with it held.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "store_int.h"

static void fill_snapshot(sqlite3_stmt *st, void *elem)
{
	struct store_snapshot *e = elem;

	e->seq = sqlite3_column_int64(st, 0);
	snprintf(e->uuid, sizeof(e->uuid), "%s",
		 (const char *)sqlite3_column_text(st, 1));
	e->created_ns = sqlite3_column_int64(st, 2);
	e->generation = (uint64_t)sqlite3_column_int64(st, 3);
	e->size = (uint64_t)sqlite3_column_int64(st, 4);
	e->deleted = sqlite3_column_int(st, 5) != 0;
	e->bookmark = sqlite3_column_int(st, 6) != 0;
}

int store_list_snapshots(struct store *s, struct store_snapshot **out,
			 size_t *n)
{
	return index_list_rows(
		s,
		"SELECT seq, uuid, created_ns, generation, size, "
		"deleted, bookmark FROM snapshots ORDER BY seq",
		sizeof(**out), fill_snapshot, (void **)out, n);
}

int store_add_snapshot(struct store *s, struct store_snapshot *snap)
{
	int64_t gen = (int64_t)s->info.generation;
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_tx_begin(s->db);
	if (r)
		goto out;
	r = index_run(
		s->db, "insert snapshot",
		"INSERT INTO snapshots(uuid, created_ns, generation, size, "
		"deleted) VALUES(?, ?, ?, ?, ?)",
		"tiiii", snap->uuid, snap->created_ns, gen, (int64_t)snap->size,
		(int64_t)snap->deleted);
	if (!r) {
		snap->seq = sqlite3_last_insert_rowid(s->db);
		snap->generation = (uint64_t)gen;
		r = index_meta_set_u64(s->db, "generation", (uint64_t)gen + 1);
	}
	if (!r)
		r = index_run(s->db, "close generation",
			      "UPDATE generations SET closed_by=? WHERE gen=?",
			      "ti", snap->uuid, gen);
	if (!r)
		r = index_run(s->db, "open generation",
			      "INSERT INTO generations(gen, opened_ns, reason) "
			      "VALUES(?, ?, 'snapshot')",
			      "ii", gen + 1, snap->created_ns);
	r = index_tx_end(s->db, r, "index.snapshot");
	if (!r)
		s->info.generation++;
out:
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_mark_deleted(struct store *s, int64_t seq, bool keep_bookmark)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_run(s->db, "mark snapshot deleted",
		      "UPDATE snapshots SET deleted=1, bookmark=? WHERE seq=?",
		      "ii", (int64_t)keep_bookmark, seq);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_keep_snapshot(struct store *s, int64_t seq)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_run(s->db, "keep snapshot",
		      "UPDATE snapshots SET deleted=0 WHERE seq=? AND "
		      "deleted=1 AND bookmark=0",
		      "i", seq);
	if (!r && !sqlite3_changes(s->db))
		r = -ENOENT;
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_delete_bookmark(struct store *s, int64_t seq)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_run(s->db, "delete bookmark",
		      "DELETE FROM snapshots WHERE seq=? AND bookmark=1 AND "
		      "deleted=0",
		      "i", seq);
	if (!r && !sqlite3_changes(s->db))
		r = -ENOENT;
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

/* ORs one bitmap word into generation gen's; db_lock held. */
int store_insert_word(struct store *s, uint64_t gen, const struct cbt_word *w)
{
	int rc, r;

	sqlite3_bind_int64(s->ins_word, 1, (int64_t)gen);
	sqlite3_bind_int64(s->ins_word, 2, (int64_t)w->word);
	sqlite3_bind_int64(s->ins_word, 3, (int64_t)w->bits);
	rc = sqlite3_step(s->ins_word);
	r = rc == SQLITE_DONE ? 0 : index_err(s->db, rc, "insert bitmap word");
	sqlite3_reset(s->ins_word);
	return r;
}

int store_for_each_cbt_word(struct store *s, uint64_t gen,
			    int (*fn)(void *arg, uint64_t word, uint64_t bits),
			    void *arg)
{
	sqlite3_stmt *st;
	int rc, r = 0;

	pthread_mutex_lock(&s->rdb_lock);
	rc = sqlite3_prepare_v2(s->rdb,
				"SELECT word, bits FROM cbt WHERE gen=? ORDER "
				"BY word",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = index_err(s->rdb, rc, "prepare bitmap scan");
		goto out;
	}
	sqlite3_bind_int64(st, 1, (int64_t)gen);
	while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = fn(arg, (uint64_t)sqlite3_column_int64(st, 0),
		       (uint64_t)sqlite3_column_int64(st, 1));
	if (!r && rc != SQLITE_DONE)
		r = index_err(s->rdb, rc, "bitmap scan");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->rdb_lock);
	return r;
}

static void fill_generation(sqlite3_stmt *st, void *elem)
{
	struct store_generation *g = elem;

	g->gen = (uint64_t)sqlite3_column_int64(st, 0);
	g->opened_ns = sqlite3_column_int64(st, 1);
	snprintf(g->closed_by, sizeof(g->closed_by), "%s",
		 (const char *)sqlite3_column_text(st, 2));
	snprintf(g->reason, sizeof(g->reason), "%s",
		 (const char *)sqlite3_column_text(st, 3));
	snprintf(g->widened, sizeof(g->widened), "%s",
		 (const char *)sqlite3_column_text(st, 4));
	g->dropped = sqlite3_column_int(st, 5) != 0;
}

int store_list_generations(struct store *s, struct store_generation **out,
			   size_t *n)
{
	return index_list_rows(
		s,
		"SELECT gen, opened_ns, closed_by, reason, widened, "
		"dropped FROM generations ORDER BY gen",
		sizeof(**out), fill_generation, (void **)out, n);
}

int store_widen_generation(struct store *s, uint64_t gen, const char *reason)
{
	int r;

	pthread_mutex_lock(&s->db_lock);
	r = index_run(s->db, "widen generation",
		      "UPDATE generations SET widened=? WHERE gen=?", "ti",
		      reason, (int64_t)gen);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_drop_generation(struct store *s, uint64_t gen)
{
	int r;

	if (gen >= s->info.generation)
		return -EBUSY;
	pthread_mutex_lock(&s->db_lock);
	r = index_tx_begin(s->db);
	if (!r)
		r = index_run(s->db, "drop bitmap",
			      "DELETE FROM cbt WHERE gen=?", "i", (int64_t)gen);
	if (!r)
		r = index_run(s->db, "drop generation",
			      "UPDATE generations SET dropped=1 WHERE gen=?",
			      "i", (int64_t)gen);
	r = index_tx_end(s->db, r, NULL);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_replace_cbt_words(struct store *s, uint64_t gen,
			    const uint64_t *ranges, size_t nranges,
			    const struct cbt_word *words, size_t nwords)
{
	sqlite3_stmt *del = NULL;
	int rc, r;

	pthread_mutex_lock(&s->db_lock);
	r = index_tx_begin(s->db);
	if (!r) {
		rc = sqlite3_prepare_v2(s->db,
					"DELETE FROM cbt WHERE gen=?1 AND "
					"word BETWEEN ?2 AND ?3",
					-1, &del, NULL);
		if (rc != SQLITE_OK)
			r = index_err(s->db, rc, "prepare bitmap replace");
	}
	for (size_t i = 0; i < nranges && !r; i++) {
		sqlite3_bind_int64(del, 1, (int64_t)gen);
		sqlite3_bind_int64(del, 2, (int64_t)ranges[2 * i]);
		sqlite3_bind_int64(del, 3, (int64_t)ranges[2 * i + 1]);
		rc = sqlite3_step(del);
		if (rc != SQLITE_DONE)
			r = index_err(s->db, rc, "delete bitmap words");
		sqlite3_reset(del);
	}
	for (size_t i = 0; i < nwords && !r; i++)
		if (words[i].bits)
			r = store_insert_word(s, gen, &words[i]);
	r = index_tx_end(s->db, r, "index.commit");
	sqlite3_finalize(del);
	pthread_mutex_unlock(&s->db_lock);
	return r;
}

int store_get_generation(struct store *s, uint64_t gen,
			 struct store_generation *out)
{
	struct store_generation *v;
	size_t n;
	int r = store_list_generations(s, &v, &n);

	if (r)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n; i++)
		if (v[i].gen == gen && !v[i].dropped) {
			*out = v[i];
			r = 0;
		}
	free(v);
	return r;
}
