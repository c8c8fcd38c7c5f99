/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Batched memory operations through one io_uring owned by the main thread:
 * backing (madvise MADV_POPULATE_WRITE) and trimming (fallocate
 * PUNCH_HOLE).  Completions are signalled through an eventfd the event loop
 * polls, and delivered by uring_reap(), never from inside a queueing call.
 * Without io_uring (ENOSYS, EPERM, disabled) the operations run
 * synchronously and are delivered the same way.
 */
#ifndef HAKD_URING_H
#define HAKD_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URING_ENTRIES 64

/* Called with the operation's result: 0 or -errno. */
typedef void (*uring_cb)(void *arg, int res);

struct uring_stats {
	uint64_t ops;
	uint64_t failed;
	uint64_t populated_bytes;
	uint64_t punched_bytes;
};

int uring_init(unsigned entries);
/* Waits for every operation in flight and delivers it. */
void uring_fini(void);

/* The eventfd to poll, or -1 in synchronous mode (then call uring_reap()
 * after queueing). */
int uring_fd(void);
bool uring_async(void);

/* Queue one operation.  Returns 0, or -EBUSY when too many are in flight
 * (try again later), or -errno; cb is called only when 0 is returned. */
int uring_populate(void *addr, size_t len, uring_cb cb, void *arg);
int uring_punch(int fd, uint64_t off, uint64_t len, uring_cb cb, void *arg);

/* Submits what was queued. */
void uring_flush(void);
/* Delivers completed operations. */
void uring_reap(void);

void uring_get_stats(struct uring_stats *st);

#endif
