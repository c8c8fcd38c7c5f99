/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Output.  Tables are Markdown pipe tables with padded columns: readable in
 * a terminal as they are, and pasted unchanged into docs/benchmarks.md.
 * JSON is one flat object per line, to stdout with --json and to the
 * --json-file in any case.
 */
#include <stdarg.h>
#include <string.h>

#include "bench.h"

void table_init(struct table *t, const char *spec)
{
	char copy[TABLE_MAX_COLS * TABLE_CELL], *save = NULL, *tok;

	memset(t, 0, sizeof(*t));
	snprintf(copy, sizeof(copy), "%s", spec);
	for (tok = strtok_r(copy, "|", &save); tok && t->ncols < TABLE_MAX_COLS;
	     tok = strtok_r(NULL, "|", &save)) {
		t->right[t->ncols] = tok[0] == '>';
		snprintf(t->head[t->ncols], TABLE_CELL, "%.*s", TABLE_CELL - 1,
			 tok + t->right[t->ncols]);
		t->ncols++;
	}
}

void table_row(struct table *t, const char *fmt, ...)
{
	char line[TABLE_MAX_COLS * TABLE_CELL], *save = NULL, *tok;
	unsigned c = 0;
	va_list ap;

	if (t->nrows >= TABLE_MAX_ROWS)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* strtok_r would merge empty cells: split by hand. */
	for (tok = line; tok && c < t->ncols; c++) {
		save = strchr(tok, '|');
		if (save)
			*save++ = '\0';
		/* A cell longer than TABLE_CELL is cut: tables are for people. */
		snprintf(t->cell[t->nrows][c], TABLE_CELL, "%.*s", TABLE_CELL - 1, tok);
		tok = save;
	}
	t->nrows++;
}

static void print_cell(const char *s, int width, bool right)
{
	printf(right ? " %*s |" : " %-*s |", width, s);
}

void table_print(const struct table *t)
{
	int w[TABLE_MAX_COLS];

	for (unsigned c = 0; c < t->ncols; c++) {
		w[c] = (int)strlen(t->head[c]);
		for (unsigned r = 0; r < t->nrows; r++)
			if ((int)strlen(t->cell[r][c]) > w[c])
				w[c] = (int)strlen(t->cell[r][c]);
	}
	printf("|");
	for (unsigned c = 0; c < t->ncols; c++)
		print_cell(t->head[c], w[c], t->right[c]);
	printf("\n|");
	for (unsigned c = 0; c < t->ncols; c++) {
		char dash[TABLE_CELL + 2];
		int n = w[c] < TABLE_CELL ? w[c] : TABLE_CELL;

		memset(dash, '-', (size_t)n);
		if (t->right[c])
			dash[n - 1] = ':';
		dash[n] = '\0';
		printf(" %s |", dash);
	}
	printf("\n");
	for (unsigned r = 0; r < t->nrows; r++) {
		printf("|");
		for (unsigned c = 0; c < t->ncols; c++)
			print_cell(t->cell[r][c], w[c], t->right[c]);
		printf("\n");
	}
	printf("\n");
	fflush(stdout);
}

/* ---- JSON ---- */

static void json_add(struct json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void json_add(struct json *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (j->len >= sizeof(j->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		j->len += (size_t)n;
}

void json_begin(struct json *j, const char *scenario)
{
	j->len = 0;
	json_add(j, "{\"scenario\":\"%s\"", scenario);
}

/* Keys and values are this program's own words: nothing to escape. */
void json_str(struct json *j, const char *key, const char *v)
{
	json_add(j, ",\"%s\":\"%s\"", key, v);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	json_add(j, ",\"%s\":%llu", key, (unsigned long long)v);
}

void json_num(struct json *j, const char *key, double v, int decimals)
{
	if (v < 0)
		json_add(j, ",\"%s\":null", key);
	else
		json_add(j, ",\"%s\":%.*f", key, decimals, v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	json_add(j, ",\"%s\":%s", key, v ? "true" : "false");
}

void json_end(struct json *j, const struct bench *b)
{
	json_add(j, "}\n");
	if (b->o->json) {
		fputs(j->buf, stdout);
		fflush(stdout);
	}
	if (b->json_file) {
		fputs(j->buf, b->json_file);
		fflush(b->json_file);
	}
}
