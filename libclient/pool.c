/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A pool: the two memfds a WELCOME brought, mapped, checked and described in
 * private memory; and what happens to it when the daemon goes away (retire)
 * or the process forks (forget).
 */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static size_t align_cl(size_t n)
{
	return (n + HAK_CACHELINE - 1) & ~(size_t)(HAK_CACHELINE - 1);
}

/* Largest power of two <= min(HAK_LOCAL_CACHE_MAX, max(1, nslots / DIV)),
 * raised to the smallest power of two >= min(HAK_LOCAL_CACHE_MIN,
 * nslots / 2). */
static uint32_t local_cache_entries(uint32_t nslots)
{
	uint32_t want = nslots / HAK_LOCAL_CACHE_DIV, cap = 1;
	uint32_t floor = nslots / 2 < HAK_LOCAL_CACHE_MIN ? nslots / 2 : HAK_LOCAL_CACHE_MIN;

	if (want > HAK_LOCAL_CACHE_MAX)
		want = HAK_LOCAL_CACHE_MAX;
	while (cap * 2 <= want)
		cap *= 2;
	/* The floor rounds up: a class of 7 slots caches 4, not 2. */
	while (cap < floor)
		cap *= 2;
	return cap;
}

/* Bytes of private memory a pool needs: the struct, then per class the
 * local cache ring and the slot state array. */
static size_t private_size(const struct hak_ctrl_hdr *h)
{
	size_t off = align_cl(sizeof(struct hak_pool));

	for (unsigned i = 0; i < h->nclasses; i++) {
		off += align_cl(sizeof(struct hak_ring_shared));
		off += align_cl(local_cache_entries(h->cls[i].nslots) * sizeof(hak_desc_t));
		off += align_cl((size_t)h->cls[i].nslots * sizeof(uint64_t));
		off += align_cl(((size_t)h->cls[i].nslots + CHAR_BIT - 1) / CHAR_BIT);
	}
	return (size_t)hak_page_round(off);
}

static void class_init(struct hak_pool *p, unsigned i, char **cursor)
{
	const struct hak_class_layout *cl = &p->hdr.cls[i];
	struct hak_class_rt *k = &p->cls[i];
	uint32_t cap = local_cache_entries(cl->nslots);

	k->base = p->base + cl->pool_offset;
	k->slot_size = cl->slot_size;
	k->slot_shift = 0;
	if ((cl->slot_size & (cl->slot_size - 1)) == 0)
		k->slot_shift = (unsigned)__builtin_ctzll(cl->slot_size);
	k->nslots = cl->nslots;
	k->ready_low = cl->ready_low;
	k->ret_batch = cl->ret_batch;
	k->punch_advice = MADV_REMOVE;
	hak_layout_ring(&p->hdr, p->ctrl, i, 0, &k->ready);
	hak_layout_ring(&p->hdr, p->ctrl, i, 1, &k->ret);
	k->local.s = (struct hak_ring_shared *)*cursor;
	*cursor += align_cl(sizeof(struct hak_ring_shared));
	k->local.e = (hak_desc_t *)*cursor;
	k->local.mask = cap - 1;
	*cursor += align_cl(cap * sizeof(hak_desc_t));
	k->slot_state = (uint64_t *)*cursor;
	*cursor += align_cl((size_t)cl->nslots * sizeof(uint64_t));
	k->pf_done = (uint8_t *)*cursor;
	*cursor += align_cl(((size_t)cl->nslots + CHAR_BIT - 1) / CHAR_BIT);
	k->live_low = &p->sync->ready_low[i];
}

/* The private half of a pool.  Populated up front: the slot state is
 * touched on the hot path, which must not fault. */
struct hak_pool *hak_pool_build(const struct hak_ctrl_hdr *h, void *ctrl, void *base)
{
	size_t size = private_size(h);
	struct hak_pool *p = hak_map_private(size, MAP_POPULATE);
	char *cursor;

	if (!p)
		return NULL;
	p->hdr = *h;
	p->priv_size = size;
	p->ctrl = ctrl;
	p->ctrl_size = h->ctrl_size;
	p->base = base;
	p->size = h->pool_size;
	p->sync = hak_ctrl_at(ctrl, h->sync_off);
	p->counters = hak_ctrl_at(ctrl, h->counters_off);
	p->doorbell_fd = -1;
	p->nclasses = h->nclasses;
	cursor = (char *)p + align_cl(sizeof(*p));
	for (unsigned i = 0; i < h->nclasses; i++)
		class_init(p, i, &cursor);
	return p;
}

/* A memfd of exactly the size WELCOME announced.  The pool must be sealed
 * against shrinking: otherwise a truncate would turn our loads into SIGBUS. */
static int check_memfd(struct hak_client *c, int fd, uint64_t size, const char *what, bool sealed)
{
	struct stat st;
	int seals;

	if (HAK_SYSCALL(fstat(fd, &st)) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != size || size > SIZE_MAX) {
		hak_err(c, "%s memfd does not match the announced %llu bytes", what,
			(unsigned long long)size);
		return -EBADMSG;
	}
	seals = HAK_SYSCALL(fcntl(fd, F_GET_SEALS));
	if (sealed && (seals < 0 || !(seals & F_SEAL_SHRINK))) {
		hak_err(c, "%s memfd is not sealed against shrinking", what);
		return -EBADMSG;
	}
	return 0;
}

static int map_shared(int fd, size_t size, void **out)
{
	int saved = errno;
	void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int r = m == MAP_FAILED ? -errno : 0;

	errno = saved;
	*out = m;
	return r;
}

/* Maps the control segment and returns a validated private copy of its
 * header: copied first, then checked, so the daemon cannot change it in
 * between. */
static int map_ctrl(struct hak_client *c, const struct hak_msg_welcome *w, int fd, void **ctrl,
		    struct hak_ctrl_hdr *h)
{
	int r;

	if (w->ctrl_size < sizeof(*h))
		return -EBADMSG;
	r = map_shared(fd, w->ctrl_size, ctrl);
	if (r < 0)
		return r;
	memcpy(h, *ctrl, sizeof(*h));
	if (hak_layout_validate(h, w->ctrl_size, w->pool_size) < 0 || h->nclasses != w->nclasses) {
		hak_err(c, "control segment layout is invalid");
		HAK_SYSCALL(munmap(*ctrl, w->ctrl_size));
		return -EBADMSG;
	}
	return 0;
}

static int map_all(struct hak_client *c, const struct hak_msg_welcome *w, const int fds[3],
		   struct hak_pool **out)
{
	struct hak_ctrl_hdr h;
	void *ctrl, *base;
	int r;

	r = map_ctrl(c, w, fds[1], &ctrl, &h);
	if (r < 0)
		return r;
	r = map_shared(fds[0], w->pool_size, &base);
	if (r < 0)
		goto fail_ctrl;
	/* A child must never write the shared pool: it is not copy-on-write. */
	r = HAK_SYSCALL(madvise(base, w->pool_size, MADV_DONTFORK));
	if (r == 0)
		r = HAK_SYSCALL(madvise(ctrl, w->ctrl_size, MADV_DONTFORK));
	if (r < 0)
		goto fail_pool;
	*out = hak_pool_build(&h, ctrl, base);
	if (*out)
		return 0;
	r = -ENOMEM;
fail_pool:
	HAK_SYSCALL(munmap(base, w->pool_size));
fail_ctrl:
	HAK_SYSCALL(munmap(ctrl, w->ctrl_size));
	return r;
}

int hak_pool_create(struct hak_client *c, const struct hak_msg_welcome *w, int fds[3],
		    struct hak_pool **out)
{
	int r = check_memfd(c, fds[0], w->pool_size, "pool", true);

	if (r == 0)
		r = check_memfd(c, fds[1], w->ctrl_size, "control", false);
	if (r == 0)
		r = map_all(c, w, fds, out);
	/* The mappings keep the memfds alive. */
	close(fds[0]);
	close(fds[1]);
	if (r < 0) {
		close(fds[2]);
		return r;
	}
	(*out)->doorbell_fd = fds[2];
	return 0;
}

void hak_pool_remove_slot(struct hak_class_rt *k, uint32_t slot)
{
	/* Punches the slot out of the memfd (or drops a local pool's private
	 * pages): the memory goes back to the system and the slot reads as
	 * zero if it is ever touched again. */
	HAK_SYSCALL(
		madvise(k->base + (uint64_t)slot * k->slot_size, k->slot_size, k->punch_advice));
}

static void drain_mc(struct hak_class_rt *k, struct hak_ring *r)
{
	hak_desc_t d;

	while (hak_ring_pop_mc(r, &d))
		if (hak_desc_slot(d) < k->nslots)
			hak_pool_remove_slot(k, hak_desc_slot(d));
}

/* Takes what was returned and never consumed, as the consumer the daemon
 * no longer is. */
static void drain_returns(struct hak_class_rt *k)
{
	uint32_t head = hak_load_relaxed(&k->ret.s->head);
	int64_t n = hak_ring_sc_avail(&k->ret, head);

	for (int64_t i = 0; i < n; i++) {
		hak_desc_t d = hak_ring_load_entry(&k->ret, head + (uint32_t)i);

		if (hak_desc_slot(d) < k->nslots)
			hak_pool_remove_slot(k, hak_desc_slot(d));
	}
	if (n > 0)
		hak_ring_sc_release(&k->ret, head + (uint32_t)n);
}

void hak_pool_retire(struct hak_client *c, struct hak_pool *p)
{
	/* Frees that see dead punch their slot instead of returning it. */
	__atomic_store_n(&p->dead, 1, __ATOMIC_RELEASE);
	/* Give back every slot nobody holds: the memfd lives on in our
	 * mapping, so would its pages.  Slots still held come back through
	 * hak_free. */
	for (unsigned i = 0; i < p->nclasses; i++) {
		drain_mc(&p->cls[i], &p->cls[i].ready);
		drain_mc(&p->cls[i], &p->cls[i].local);
		drain_returns(&p->cls[i]);
	}
	hak_dbg(c, "pool %p retired", (void *)p->base);
}

/* In a fork child (single-threaded, from the atfork handler). */
void hak_pool_forget(struct hak_pool *p)
{
	void *m;

	__atomic_store_n(&p->absent, 1, __ATOMIC_RELAXED);
	if (p->doorbell_fd >= 0)
		close(p->doorbell_fd);
	p->doorbell_fd = -1;
	/* Hold the old pool's addresses with an inaccessible, unbacked mapping:
	 * a stray access faults at once, and no later mapping of the child
	 * lands there (a free of it would look like a free into the old pool). */
	m = mmap(p->base, p->size, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
	if (m == p->base)
		p->reserved = 1;
	else if (m != MAP_FAILED)
		munmap(m, p->size); /* an old kernel took the address as a hint */
}

void hak_pool_destroy(struct hak_pool *p)
{
	if (p->local) {
		hak_local_pool_destroy(p);
		return;
	}
	if (!p->absent) {
		munmap(p->base, p->size);
		munmap(p->ctrl, p->ctrl_size);
		if (p->doorbell_fd >= 0)
			close(p->doorbell_fd);
	} else if (p->reserved) {
		munmap(p->base, p->size);
	}
	munmap(p, p->priv_size);
}
