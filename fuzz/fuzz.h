/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the fuzz harnesses share: the libFuzzer entry points (also called by
 * fuzz/run.c, the runner without libFuzzer), reading an input as a stream
 * of small numbers, and failing loudly when an invariant does not hold.
 */
#ifndef HAK_FUZZ_H
#define HAK_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test does not hold: abort, so that
 * libFuzzer keeps the input as a crash and the runner fails. */
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant '%s' does not hold: ", __FILE__,         \
				__LINE__, #cond);                                                  \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* An input read front to back; past its end every number reads as 0, so
 * that any prefix of an input is an input too. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fuzz_more(const struct fuzz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < sizeof(v); i++)
		v |= (uint32_t)fuzz_u8(in) << (8 * i);
	return v;
}

#endif
