/*
 * cmdline.c - parses the kernel command line on demand.
 *
 * Lookups rescan the string each time; it is at most 2 KiB and read a
 * handful of times per boot, so no table is worth building.
 */
#include "cmdline.h"

static const char *cmdline = "";

void cmdline_init(const char *s)
{
	cmdline = s ? s : "";
}

const char *cmdline_get_all(void)
{
	return cmdline;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Which occurrence find_value() returns: the nth (0-based), or the last. */
#define LAST_OCCURRENCE	(~0u)

/*
 * Returns the start of the value of occurrence nth of key (or of the
 * last one, for LAST_OCCURRENCE), or NULL if there are not that many.
 */
static const char *find_value(const char *key, size_t *vlen, u32 nth)
{
	size_t klen = strlen(key);
	const char *found = NULL;
	const char *p = cmdline;

	while (*p) {
		const char *word, *end;

		while (is_space(*p))
			p++;
		if (!*p)
			break;
		word = p;
		while (*p && !is_space(*p))
			p++;
		end = p;
		if ((size_t)(end - word) < klen || strncmp(word, key, klen))
			continue;
		if (word + klen == end) {		/* bare "key" */
			found = end;
			*vlen = 0;
		} else if (word[klen] == '=') {		/* "key=value" */
			found = word + klen + 1;
			*vlen = (size_t)(end - found);
		} else {				/* "keyfoo": another key */
			continue;
		}
		if (nth != LAST_OCCURRENCE && !nth--)
			return found;
	}
	return nth == LAST_OCCURRENCE ? found : NULL;
}

static bool copy_value(const char *v, size_t vlen, char *out,
		       size_t outlen)
{
	if (!v)
		return false;
	if (outlen) {
		size_t n = MIN(vlen, outlen - 1);

		memcpy(out, v, n);
		out[n] = '\0';
	}
	return true;
}

bool cmdline_get(const char *key, char *out, size_t outlen)
{
	size_t vlen = 0;
	const char *v = find_value(key, &vlen, LAST_OCCURRENCE);

	return copy_value(v, vlen, out, outlen);
}

bool cmdline_get_nth(const char *key, u32 nth, char *out, size_t outlen)
{
	size_t vlen = 0;
	const char *v = find_value(key, &vlen, nth);

	return copy_value(v, vlen, out, outlen);
}

bool cmdline_get_first(const char *key, char *out, size_t outlen)
{
	return cmdline_get_nth(key, 0, out, outlen);
}

u64 cmdline_get_u64(const char *key, u64 def)
{
	size_t vlen = 0;
	const char *v = find_value(key, &vlen, LAST_OCCURRENCE);
	unsigned base = 10;
	u64 n = 0;

	if (!v || !vlen)
		return def;
	if (vlen > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		v += 2;
		vlen -= 2;
	}
	for (size_t i = 0; i < vlen; i++) {
		char c = v[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return def;
		n = n * base + d;
	}
	return n;
}
