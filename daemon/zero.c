/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Zeroing methods and their measurement. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "hak_layout.h"
#include "util.h"
#include "zero.h"

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

/* Best of rounds, in GB/s. */
static double measure_one(enum zero_method m, char *buf, size_t len)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < ZERO_MEASURE_ROUNDS; i++) {
		uint64_t t0 = now_ns(), dt;

		buf[0] = 1; /* keep the stores from looking redundant */
		zero_range(m, buf, len);
		dt = now_ns() - t0;
		best = dt < best ? dt : best;
	}
	return (double)len / (double)(best ? best : 1);
}

int zero_measure(double gbps[ZERO_METHOD_NR])
{
	size_t len = ZERO_MEASURE_BYTES;
	char *buf;

	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -errno;
	/* Pools are in 4 KiB pages; and faults must not be part of the score. */
	madvise(buf, len, MADV_NOHUGEPAGE);
	memset(buf, 1, len);
	for (int m = 0; m < ZERO_METHOD_NR; m++)
		gbps[m] = zero_method_supported(m) ? measure_one(m, buf, len) : 0.0;
	munmap(buf, len);
	return 0;
}

enum zero_method zero_fastest(const double gbps[ZERO_METHOD_NR])
{
	enum zero_method best = ZERO_MEMSET;

	for (int m = 0; m < ZERO_METHOD_NR; m++)
		if (zero_method_supported(m) && gbps[m] > gbps[best])
			best = m;
	return best;
}

/* mincore() vector bytes read at a time. */
#define RESIDENT_CHUNK 512

bool zero_all_resident(void *p, size_t len)
{
	unsigned char v[RESIDENT_CHUNK];

	for (size_t done = 0; done < len;) {
		size_t n = len - done;

		if (n > sizeof(v) * HAK_PAGE_SIZE)
			n = sizeof(v) * HAK_PAGE_SIZE;
		if (mincore((char *)p + done, n, v) < 0)
			return false;
		for (size_t i = 0; i < n / HAK_PAGE_SIZE; i++)
			if (!(v[i] & 1))
				return false;
		done += n;
	}
	return true;
}
