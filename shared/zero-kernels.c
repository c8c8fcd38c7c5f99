/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The zeroing kernels: rep stosb, non-temporal stores, memset.  The
 * daemon's workers zero returned slots with them, and hakbench measures
 * them, so both measure and run the same code.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "zero-kernels.h"

static const char *const method_names[ZERO_METHOD_NR] = {
	[ZERO_AUTO] = "auto",
	[ZERO_REP_STOSB] = "rep-stosb",
	[ZERO_NT] = "nt",
	[ZERO_MEMSET] = "memset",
};

const char *zero_method_name(enum zero_method m)
{
	return (unsigned)m < ZERO_METHOD_NR ? method_names[m] : "?";
}

int zero_method_parse(const char *name)
{
	for (int m = 0; m < ZERO_METHOD_NR; m++)
		if (strcmp(name, method_names[m]) == 0)
			return m;
	return -EINVAL;
}

#if defined(__x86_64__)

bool zero_method_supported(enum zero_method m)
{
	return m > ZERO_AUTO && m < ZERO_METHOD_NR;
}

static void zero_rep_stosb(void *p, size_t len)
{
	__asm__ __volatile__("rep stosb" : "+D"(p), "+c"(len) : "a"(0) : "memory");
}

#define SSE2_ALIGN 16u
#define SSE2_STEP 64u
#define AVX2_ALIGN 32u
#define AVX2_STEP 128u

/* Plain stores up to the alignment the streaming stores need; returns how
 * many bytes it wrote. */
static size_t zero_head(char *p, size_t len, size_t align)
{
	size_t head = (align - ((uintptr_t)p & (align - 1))) & (align - 1);

	head = head < len ? head : len;
	memset(p, 0, head);
	return head;
}

static void zero_nt_sse2(char *p, size_t len)
{
	__m128i z = _mm_setzero_si128();
	size_t head = zero_head(p, len, SSE2_ALIGN);

	p += head;
	len -= head;
	for (; len >= SSE2_STEP; len -= SSE2_STEP, p += SSE2_STEP) {
		_mm_stream_si128((__m128i *)p, z);
		_mm_stream_si128((__m128i *)(p + 16), z);
		_mm_stream_si128((__m128i *)(p + 32), z);
		_mm_stream_si128((__m128i *)(p + 48), z);
	}
	memset(p, 0, len);
}

__attribute__((target("avx2"))) static void zero_nt_avx2(char *p, size_t len)
{
	__m256i z = _mm256_setzero_si256();
	size_t head = zero_head(p, len, AVX2_ALIGN);

	p += head;
	len -= head;
	for (; len >= AVX2_STEP; len -= AVX2_STEP, p += AVX2_STEP) {
		_mm256_stream_si256((__m256i *)p, z);
		_mm256_stream_si256((__m256i *)(p + 32), z);
		_mm256_stream_si256((__m256i *)(p + 64), z);
		_mm256_stream_si256((__m256i *)(p + 96), z);
	}
	memset(p, 0, len);
}

static void zero_nt(void *p, size_t len)
{
	if (__builtin_cpu_supports("avx2"))
		zero_nt_avx2(p, len);
	else
		zero_nt_sse2(p, len);
}

/* Streaming stores are weakly ordered: the fence makes them visible before
 * whatever publishes the slot (the completion lock, then the ring's release
 * store). */
void zero_fence(void)
{
	_mm_sfence();
}

int zero_range_unfenced(enum zero_method m, void *p, size_t len)
{
	switch (m) {
	case ZERO_REP_STOSB:
		zero_rep_stosb(p, len);
		return 0;
	case ZERO_NT:
		zero_nt(p, len);
		return 0;
	case ZERO_MEMSET:
		memset(p, 0, len);
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

#else /* !__x86_64__ */

bool zero_method_supported(enum zero_method m)
{
	return m == ZERO_MEMSET;
}

int zero_range_unfenced(enum zero_method m, void *p, size_t len)
{
	if (m != ZERO_MEMSET)
		return -EOPNOTSUPP;
	memset(p, 0, len);
	return 0;
}

void zero_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#endif

int zero_range(enum zero_method m, void *p, size_t len)
{
	int r = zero_range_unfenced(m, p, len);

	zero_fence();
	return r;
}
