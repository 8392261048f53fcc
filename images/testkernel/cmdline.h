/*
 * cmdline.h - key=value lookup in the kernel command line.
 *
 * The command line is a space-separated list of words; a word is
 * "key=value" or a bare "key". No quoting. When a key appears more than
 * once the last one wins, as in Linux, so a VMM can append overrides.
 */
#ifndef CMDLINE_H
#define CMDLINE_H

#include "lib.h"

/* Keeps a pointer; the string must stay valid (boot_info's copy). */
void cmdline_init(const char *cmdline);
const char *cmdline_get_all(void);

/*
 * Copies the value of key into out (cut to outlen-1 bytes) and returns
 * true, or returns false if the key is absent. A bare key has value "".
 */
bool cmdline_get(const char *key, char *out, size_t outlen);

/*
 * Same, but the first occurrence wins. For keys that may repeat with
 * different meanings, such as virtio_mmio.device= (one per device).
 */
bool cmdline_get_first(const char *key, char *out, size_t outlen);

/*
 * Same, for occurrence nth (0-based) in command-line order: false if the
 * key appears nth times or fewer. Walks every virtio_mmio.device= word.
 */
bool cmdline_get_nth(const char *key, u32 nth, char *out, size_t outlen);

/* Decimal or 0x-hex value of key; def if absent or not a number. */
u64 cmdline_get_u64(const char *key, u64 def);

#endif
