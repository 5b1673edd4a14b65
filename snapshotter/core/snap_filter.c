/* Parser and matcher for List filters (grammar in snap_filter.h). */
#include "snap_filter.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum sel_field { FIELD_UNKNOWN, FIELD_NAME, FIELD_PARENT, FIELD_KIND, FIELD_LABEL };
enum sel_op { OP_PRESENT, OP_EQ, OP_NE, OP_RE };

struct selector {
	enum sel_field field;
	enum sel_op op;
	char *label; /* FIELD_LABEL: the label's key */
	char *value;
	regex_t re; /* OP_RE */
};

struct conjunction {
	size_t n;
	struct selector *v;
};

struct snap_filter {
	size_t n;
	struct conjunction *v;
};

struct lexer {
	const char *p;
	const char **why;
};

static void skip_space(struct lexer *lx)
{
	while (*lx->p && isspace((unsigned char)*lx->p))
		lx->p++;
}

static int lex_fail(struct lexer *lx, const char *why)
{
	if (lx->why)
		*lx->why = why;
	return -EINVAL;
}

/* A double-quoted string at lx->p, escapes resolved, into *out. */
static int lex_quoted(struct lexer *lx, char **out)
{
	size_t cap = strlen(lx->p), n = 0;
	char *s = malloc(cap + 1);

	if (!s)
		return -ENOMEM;
	for (lx->p++; *lx->p && *lx->p != '"'; lx->p++) {
		if (*lx->p == '\\' && lx->p[1]) {
			lx->p++;
			s[n++] = *lx->p == 'n' ? '\n' : *lx->p == 't' ? '\t' : *lx->p;
		} else {
			s[n++] = *lx->p;
		}
	}
	if (*lx->p != '"') {
		free(s);
		return lex_fail(lx, "filter: unterminated quote");
	}
	lx->p++;
	s[n] = 0;
	*out = s;
	return 0;
}

/* A field (quoted, or letters, digits, '_' and '-') or a value (quoted, or
 * anything up to ',' or space). */
static int lex_token(struct lexer *lx, char **out, int is_value)
{
	skip_space(lx);
	if (*lx->p == '"')
		return lex_quoted(lx, out);
	const char *start = lx->p;
	while (*lx->p && !isspace((unsigned char)*lx->p) && *lx->p != ',') {
		if (!is_value && !isalnum((unsigned char)*lx->p) && *lx->p != '_' && *lx->p != '-')
			break;
		lx->p++;
	}
	if (lx->p == start)
		return lex_fail(lx, is_value ? "filter: missing value" : "filter: missing field");
	*out = strndup(start, (size_t)(lx->p - start));
	return *out ? 0 : -ENOMEM;
}

static int parse_fieldpath(struct selector *sel, struct lexer *lx)
{
	char *first;
	int r = lex_token(lx, &first, 0);

	if (r < 0)
		return r;
	if (strcmp(first, "name") == 0)
		sel->field = FIELD_NAME;
	else if (strcmp(first, "parent") == 0)
		sel->field = FIELD_PARENT;
	else if (strcmp(first, "kind") == 0)
		sel->field = FIELD_KIND;
	else if (strcmp(first, "labels") == 0)
		sel->field = FIELD_LABEL;
	free(first);
	if (*lx->p != '.') {
		if (sel->field == FIELD_LABEL) /* "labels" alone: no such scalar field */
			sel->field = FIELD_UNKNOWN;
		return 0;
	}
	/* deeper paths: labels.<key>; anything else is an unknown field */
	while (r == 0 && *lx->p == '.') {
		char *part;
		lx->p++;
		r = lex_token(lx, &part, 0);
		if (r < 0)
			break;
		if (sel->field == FIELD_LABEL && !sel->label) {
			sel->label = part;
		} else {
			sel->field = FIELD_UNKNOWN;
			free(part);
		}
	}
	return r;
}

static int parse_op(struct selector *sel, struct lexer *lx)
{
	skip_space(lx);
	if (*lx->p == 0 || *lx->p == ',') {
		sel->op = OP_PRESENT;
		return 0;
	}
	if (strncmp(lx->p, "==", 2) == 0)
		sel->op = OP_EQ;
	else if (strncmp(lx->p, "!=", 2) == 0)
		sel->op = OP_NE;
	else if (strncmp(lx->p, "~=", 2) == 0)
		sel->op = OP_RE;
	else
		return lex_fail(lx, "filter: expected ==, != or ~=");
	lx->p += 2;
	int r = lex_token(lx, &sel->value, 1);
	if (r == 0 && sel->op == OP_RE && regcomp(&sel->re, sel->value, REG_EXTENDED | REG_NOSUB)) {
		free(sel->value);
		sel->value = NULL;
		return lex_fail(lx, "filter: bad regular expression");
	}
	return r;
}

static void selector_clear(struct selector *sel)
{
	if (sel->op == OP_RE && sel->value)
		regfree(&sel->re);
	free(sel->label);
	free(sel->value);
}

static void conjunction_clear(struct conjunction *c)
{
	for (size_t i = 0; i < c->n; i++)
		selector_clear(&c->v[i]);
	free(c->v);
}

/* Parses one filter; c->n == 0 afterwards means it is empty (match all). */
static int parse_conjunction(struct conjunction *c, const char *expr, const char **why)
{
	struct lexer lx = {expr, why};

	memset(c, 0, sizeof(*c));
	skip_space(&lx);
	while (*lx.p) {
		struct selector *v = realloc(c->v, (c->n + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->v = v;
		memset(&c->v[c->n], 0, sizeof(c->v[0]));
		int r = parse_fieldpath(&c->v[c->n], &lx);
		if (r == 0)
			r = parse_op(&c->v[c->n], &lx);
		c->n++; /* cleared by the caller even when half parsed */
		if (r < 0)
			return r;
		skip_space(&lx);
		if (*lx.p == ',')
			lx.p++;
		else if (*lx.p)
			return lex_fail(&lx, "filter: expected ','");
		skip_space(&lx);
	}
	return 0;
}

int snap_filter_parse(struct snap_filter **out, const char *const *exprs, size_t n,
                      const char **why)
{
	struct snap_filter *f = calloc(1, sizeof(*f));
	int all = n == 0, r = 0;

	*out = NULL;
	if (!f || !(f->v = calloc(n ? n : 1, sizeof(*f->v)))) {
		free(f);
		return -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = parse_conjunction(&f->v[i], exprs[i], why);
		f->n = i + 1;
		if (r == 0 && f->v[i].n == 0)
			all = 1;
	}
	if (r < 0 || all) {
		snap_filter_free(f);
		return r;
	}
	*out = f;
	return 0;
}

/* The field's value, or NULL when absent. */
static const char *field_value(const struct selector *sel, const struct snap_info *info)
{
	switch (sel->field) {
	case FIELD_NAME:
		return info->name;
	case FIELD_PARENT:
		return info->parent[0] ? info->parent : NULL;
	case FIELD_KIND:
		return snap_kind_name(info->kind);
	case FIELD_LABEL:
		return sel->label ? snap_labels_get(&info->labels, sel->label) : NULL;
	default:
		return NULL;
	}
}

static int selector_match(const struct selector *sel, const struct snap_info *info)
{
	const char *v = field_value(sel, info);

	if (!v)
		return 0;
	int eq = sel->field == FIELD_KIND ? strcasecmp(v, sel->value ? sel->value : "") == 0
	                                  : strcmp(v, sel->value ? sel->value : "") == 0;
	switch (sel->op) {
	case OP_PRESENT:
		return 1;
	case OP_EQ:
		return eq;
	case OP_NE:
		return !eq;
	case OP_RE:
		return regexec(&sel->re, v, 0, NULL, 0) == 0;
	}
	return 0;
}

int snap_filter_match(const struct snap_filter *f, const struct snap_info *info)
{
	if (!f)
		return 1;
	for (size_t i = 0; i < f->n; i++) {
		size_t j = 0;
		while (j < f->v[i].n && selector_match(&f->v[i].v[j], info))
			j++;
		if (j == f->v[i].n)
			return 1;
	}
	return 0;
}

void snap_filter_free(struct snap_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++)
		conjunction_clear(&f->v[i]);
	free(f->v);
	free(f);
}
