/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzzes the daemon's side of a client's shared memory (daemon/slots.c,
 * daemon/trim.c) on a real session: sealed memfds from session_new, the
 * daemon's mappings and private slot states, real zeroing workers and
 * io_uring; no server and no client list, only the session and its
 * verdicts (a cut-off ends the input).  Each input is a small program for a hostile client that
 * pushes descriptors, pokes ring indices and entries, pops and dirties
 * slots; between its steps the daemon collects returns, services the
 * session, ticks and trims.  A race step keeps a second thread rewriting
 * shared bytes while the daemon reads them.
 *
 * After each daemon step the harness checks, from the daemon's private
 * state and the pool's bytes, what DESIGN rules 1 and 3 promise:
 *  - collecting returns changes no slot but OUT -> RETURNED, with the
 *    generation it went out with, and only for a descriptor that was in
 *    the return ring's memory;
 *  - every descriptor consumed is accepted or counted as an offence, at
 *    most one ring's worth per class and collection (bounded work);
 *  - state counts and the idle/unbacked/returned stacks agree with the
 *    slot states, no slot twice, nothing left in flight;
 *  - every slot the daemon holds as zeroed or unbacked, or has just put
 *    on a ready ring, reads as zero, though the client dirtied all it took;
 *  - each queueing moves the slot's generation on by one.
 *
 * Input: three set-up bytes (pool size, ready_high, ready_low), then ops,
 * each an op byte, a class byte and its arguments (see run_op).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include "conf.h"
#include "fuzz.h"
#include "hak_ring.h"
#include "log.h"
#include "session.h"
#include "uring.h"
#include "util.h"
#include "zero.h"

/* Pools of 16K to 1M: rings of 1 to 128 entries, wrapping often. */
#define POOL_UNIT (16 * KIB)
#define POOL_UNITS 64
#define MAX_SLOTS 256
#define MAX_OPS 256
#define MAX_SEEN 4096
#define MAX_HELD 256
#define RACE_POKES 16
#define RACE_ROUNDS 8
/* Race: entries poked are this close ahead of the daemon's head. */
#define RACE_WINDOW 8
#define DRAIN_TIMEOUT_MS 10000
#define DRAIN_POLL_MS 10
/* What the client writes into every slot it takes. */
#define DIRT 0xd1

static const struct hak_class_spec classes[] = {
	{4 * KIB, 50},
	{8 * KIB, 25},
	{16 * KIB, 25},
};

enum op {
	OP_PUSH_HELD, /* return a slot it took, as a client does */
	OP_PUSH,      /* push any descriptor */
	OP_POKE,      /* write any ring index or entry */
	OP_POP,	      /* take a ready slot and dirty it */
	OP_COLLECT,   /* daemon: session_collect_returns */
	OP_SERVICE,   /* daemon: a doorbell (session_service) */
	OP_TICK,      /* daemon: the periodic tick (trims idle slots) */
	OP_TRIM,      /* daemon: trim everything (memory pressure, hakctl trim) */
	OP_RACE,      /* daemon steps while another thread pokes */
	OP_NR,
};

/* The shared words a client can write, per class. */
enum field {
	F_RET_HEAD,
	F_RET_TAIL,
	F_RET_RESERVE,
	F_READY_HEAD,
	F_READY_TAIL,
	F_READY_RESERVE,
	F_DOORBELL,
	F_RET_ENTRY,
	F_NR,
};

struct poke {
	enum field f;
	unsigned cls;
	uint32_t idx; /* F_RET_ENTRY; racing: ahead of the shared head */
	uint64_t v;
	uint64_t v2; /* F_RET_ENTRY racing: the entry flips between v and v2 */
};

struct cdesc {
	unsigned cls;
	hak_desc_t d;
};

struct fixture {
	struct session *s;
	uint64_t clock;
	struct cdesc seen[MAX_SEEN]; /* every descriptor the return rings held */
	unsigned nseen;
	bool seen_full;
	struct cdesc held[MAX_HELD]; /* slots the client took and may write */
	unsigned nheld;
};

struct snapshot {
	struct slot slot[HAK_MAX_CLASSES][MAX_SLOTS];
	uint32_t ret_head[HAK_MAX_CLASSES];
	uint64_t returned, offences, queued;
};

static struct conf *conf;
/* Where display-only values go: the reads must happen. */
static volatile uint64_t sink;
static const uint8_t zero_page[HAK_PAGE_SIZE];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* Offences and cut-offs are what the inputs are made of. */
	log_set_level(LOG_ERR);
	conf = conf_new_defaults();
	FUZZ_CHECK(conf, "out of memory");
	conf->nclasses = ARRAY_SIZE(classes);
	memcpy(conf->cls, classes, sizeof(classes));
	conf->trim_idle_ms = 1;
	conf->zero_method = ZERO_MEMSET;
	FUZZ_CHECK(zero_init(1, ZERO_MEMSET, 0) == 0, "cannot start a zeroing worker");
	FUZZ_CHECK(uring_init(URING_ENTRIES) == 0, "uring_init");
	return 0;
}

/* ---- what the daemon may have read ---- */

static void note_seen(struct fixture *fx, unsigned cls, hak_desc_t d)
{
	for (unsigned i = 0; i < fx->nseen; i++)
		if (fx->seen[i].cls == cls && fx->seen[i].d == d)
			return;
	if (fx->nseen == MAX_SEEN)
		fx->seen_full = true;
	else
		fx->seen[fx->nseen++] = (struct cdesc){cls, d};
}

static bool was_seen(const struct fixture *fx, unsigned cls, hak_desc_t d)
{
	for (unsigned i = 0; i < fx->nseen; i++)
		if (fx->seen[i].cls == cls && fx->seen[i].d == d)
			return true;
	return fx->seen_full;
}

/* ---- the hostile client ---- */

static uint32_t *field_ptr(struct session *s, const struct poke *p)
{
	struct session_class *c = &s->cls[p->cls];

	switch (p->f) {
	case F_RET_HEAD:
		return &c->ret.s->head;
	case F_RET_TAIL:
		return &c->ret.s->tail;
	case F_RET_RESERVE:
		return &c->ret.s->reserve;
	case F_READY_HEAD:
		return &c->ready.s->head;
	case F_READY_TAIL:
		return &c->ready.s->tail;
	case F_READY_RESERVE:
		return &c->ready.s->reserve;
	default:
		return &s->sync->want_doorbell;
	}
}

/* Relaxed atomic stores: the daemon reads these words concurrently (race
 * step), and a data race would be undefined behaviour in the harness. */
static void apply_poke(struct session *s, const struct poke *p)
{
	if (p->f == F_RET_ENTRY)
		hak_ring_store_entry(&s->cls[p->cls].ret, p->idx, p->v);
	else
		hak_store_relaxed(field_ptr(s, p), (uint32_t)p->v);
}

/* A descriptor: one the daemon would accept now (the slot's current
 * generation), small numbers, or any 64 bits. */
static hak_desc_t read_desc(struct fuzz_in *in, const struct session_class *c)
{
	uint8_t how = fuzz_u8(in);
	uint32_t slot;

	switch (how % 3) {
	case 0:
		slot = fuzz_u8(in) % c->nslots;
		return hak_desc_make(slot, c->slot[slot].gen);
	case 1:
		slot = fuzz_u8(in);
		return hak_desc_make(slot, fuzz_u8(in));
	default:
		slot = fuzz_u32(in);
		return hak_desc_make(slot, fuzz_u32(in));
	}
}

static void read_poke(struct fuzz_in *in, struct fixture *fx, unsigned cls, bool racing,
		      struct poke *p)
{
	struct session_class *c = &fx->s->cls[cls];
	uint8_t how = fuzz_u8(in);

	*p = (struct poke){.f = how % F_NR, .cls = cls};
	if (p->f == F_RET_ENTRY) {
		p->idx = racing ? fuzz_u8(in) % RACE_WINDOW : fuzz_u8(in);
		p->v = read_desc(in, c);
		p->v2 = racing ? read_desc(in, c) : p->v;
		note_seen(fx, cls, p->v);
		note_seen(fx, cls, p->v2);
	} else if (how & 0x80) {
		/* Near the current value: the off-by-one cases. */
		p->v = hak_load_relaxed(field_ptr(fx->s, p)) + (uint32_t)(int8_t)fuzz_u8(in);
	} else {
		p->v = fuzz_u32(in);
	}
}

/* Pushes as a single producer that ignores the consumer: overwrites what
 * the daemon has not read yet when the ring is full. */
static void client_push(struct fixture *fx, unsigned cls, hak_desc_t d)
{
	struct hak_ring *r = &fx->s->cls[cls].ret;
	uint32_t tail = hak_load_relaxed(&r->s->tail);

	note_seen(fx, cls, d);
	hak_ring_store_entry(r, tail, d);
	hak_store_relaxed(&r->s->reserve, tail + 1);
	/* Pairs with the daemon's acquire load of tail (hak_ring_sc_avail). */
	hak_store_release(&r->s->tail, tail + 1);
}

static bool is_held(const struct fixture *fx, unsigned cls, hak_desc_t d)
{
	for (unsigned i = 0; i < fx->nheld; i++)
		if (fx->held[i].cls == cls && fx->held[i].d == d)
			return true;
	return false;
}

/* Takes what the ready ring offers.  A slot the daemon really handed out
 * (OUT, that generation) is the client's to write: it dirties all of it.
 * Anything else (a stale entry after a poked head) it leaves alone. */
static void client_pop(struct fixture *fx, unsigned cls)
{
	struct session_class *c = &fx->s->cls[cls];
	hak_desc_t d;
	uint32_t slot;

	if (!hak_ring_pop_mc(&c->ready, &d))
		return;
	slot = hak_desc_slot(d);
	if (slot >= c->nslots || c->slot[slot].state != SLOT_OUT ||
	    c->slot[slot].gen != hak_desc_gen(d) || is_held(fx, cls, d) || fx->nheld == MAX_HELD)
		return;
	fx->held[fx->nheld++] = (struct cdesc){cls, d};
	memset(c->base + (uint64_t)slot * c->slot_size, DIRT, c->slot_size);
}

static void client_push_held(struct fixture *fx, uint8_t pick)
{
	unsigned i;
	struct cdesc h;

	if (fx->nheld == 0)
		return;
	i = pick % fx->nheld;
	h = fx->held[i];
	fx->held[i] = fx->held[fx->nheld - 1];
	fx->nheld--;
	client_push(fx, h.cls, h.d);
}

/* ---- checks ---- */

static void snapshot(const struct session *s, struct snapshot *snap)
{
	for (unsigned i = 0; i < s->nclasses; i++) {
		memcpy(snap->slot[i], s->cls[i].slot, s->cls[i].nslots * sizeof(struct slot));
		snap->ret_head[i] = s->cls[i].ret_head;
	}
	snap->returned = s->st.returned;
	snap->offences = s->st.offences;
	snap->queued = s->st.queued;
}

/* Collecting may only accept returns: OUT -> RETURNED, same generation,
 * for a descriptor that was there to read; everything read is either
 * accepted or an offence; at most rounds ring's worth per class. */
static void check_collect(const struct fixture *fx, const struct snapshot *b, unsigned rounds)
{
	const struct session *s = fx->s;
	uint64_t consumed = 0, accepted = 0;

	for (unsigned i = 0; i < s->nclasses; i++) {
		const struct session_class *c = &s->cls[i];
		uint32_t took = c->ret_head - b->ret_head[i];

		FUZZ_CHECK(took <= rounds * hak_ring_entries(&c->ret),
			   "class %u: %u entries read in %u rounds", i, took, rounds);
		consumed += took;
		for (uint32_t k = 0; k < c->nslots; k++) {
			const struct slot *now = &c->slot[k], *was = &b->slot[i][k];

			if (now->state == was->state && now->gen == was->gen &&
			    now->mapped == was->mapped)
				continue;
			FUZZ_CHECK(was->state == SLOT_OUT && now->state == SLOT_RETURNED &&
					   now->gen == was->gen && now->mapped == was->mapped,
				   "class %u slot %u: state %u gen %u -> state %u gen %u", i, k,
				   was->state, was->gen, now->state, now->gen);
			FUZZ_CHECK(was_seen(fx, i, hak_desc_make(k, now->gen)),
				   "class %u slot %u gen %u returned without such a descriptor", i,
				   k, now->gen);
			accepted++;
		}
	}
	FUZZ_CHECK(s->st.returned - b->returned == accepted, "%llu accepted, %llu counted",
		   (unsigned long long)accepted,
		   (unsigned long long)(s->st.returned - b->returned));
	FUZZ_CHECK(accepted + (s->st.offences - b->offences) == consumed,
		   "%llu read, %llu accepted, %llu offences", (unsigned long long)consumed,
		   (unsigned long long)accepted,
		   (unsigned long long)(s->st.offences - b->offences));
}

static void check_stack(const struct session_class *c, unsigned cls, const struct slot_stack *st,
			enum slot_state state)
{
	uint8_t once[MAX_SLOTS] = {0};

	FUZZ_CHECK(st->n == c->count[state],
		   "class %u: %u slots in the stack of state %u, %u counted", cls, st->n, state,
		   c->count[state]);
	for (uint32_t i = 0; i < st->n; i++) {
		uint32_t k = st->v[i];

		FUZZ_CHECK(k < c->nslots && c->slot[k].state == state && !once[k]++,
			   "class %u: slot %u in the stack of state %u", cls, k, state);
	}
}

/* The daemon's private bookkeeping agrees with itself, and nothing is in
 * flight (called after drain). */
static void check_consistency(const struct session *s)
{
	uint64_t counters[HAK_CNT_NR];

	/* Display only (hakctl), from shared memory: must merely not fail. */
	session_client_counters(s, counters);
	sink += counters[HAK_CNT_RETURNED] + session_ready_pages(s);
	for (unsigned i = 0; i < s->nclasses; i++) {
		const struct session_class *c = &s->cls[i];
		uint32_t count[SLOT_NSTATES] = {0};
		struct session_class_counts cc;

		for (uint32_t k = 0; k < c->nslots; k++) {
			FUZZ_CHECK(c->slot[k].state < SLOT_NSTATES, "slot %u: state %u", k,
				   c->slot[k].state);
			count[c->slot[k].state]++;
		}
		FUZZ_CHECK(memcmp(count, c->count, sizeof(count)) == 0, "class %u: counts", i);
		FUZZ_CHECK(count[SLOT_ZEROING] == 0 && count[SLOT_TRIMMING] == 0,
			   "class %u: work left in flight", i);
		check_stack(c, i, &c->idle, SLOT_IDLE_ZERO);
		check_stack(c, i, &c->unbacked, SLOT_UNBACKED);
		check_stack(c, i, &c->returned, SLOT_RETURNED);
		/* What hakctl shows reads shared memory too. */
		session_class_counts(s, i, &cc);
		FUZZ_CHECK(cc.ready + cc.out == count[SLOT_OUT], "class %u: display counts", i);
	}
}

static bool slot_is_zero(const struct session_class *c, uint32_t k)
{
	const char *p = c->base + (uint64_t)k * c->slot_size;

	for (uint64_t off = 0; off < c->slot_size; off += sizeof(zero_page))
		if (memcmp(p + off, zero_page, sizeof(zero_page)) != 0)
			return false;
	return true;
}

/* Rule 1: zeroed and unbacked slots read as zero, and so does every slot
 * just put on a ready ring (its generation moved). */
static void check_zero(const struct session *s, const struct snapshot *b)
{
	for (unsigned i = 0; i < s->nclasses; i++) {
		const struct session_class *c = &s->cls[i];

		for (uint32_t k = 0; k < c->nslots; k++) {
			uint8_t st = c->slot[k].state;
			bool fresh = st == SLOT_OUT && c->slot[k].gen != b->slot[i][k].gen;

			if (st == SLOT_IDLE_ZERO || st == SLOT_UNBACKED || fresh)
				FUZZ_CHECK(slot_is_zero(c, k),
					   "class %u slot %u (state %u) is dirty", i, k, st);
		}
	}
}

/* ---- the daemon's event loop, reduced to this session ---- */

/* What the client list does with a verdict: the client is cut off. */
static void judge(struct session *s, enum session_verdict v)
{
	if (v != SESSION_OK)
		session_close(s);
}

/* Delivers zeroing and io_uring completions, as server_run does, until no
 * job or operation holds the session any more. */
static void drain(struct fixture *fx)
{
	uint64_t deadline = now_ns() + DRAIN_TIMEOUT_MS * NSEC_PER_MSEC;

	uring_flush();
	while (fx->s->ref > 1) {
		struct pollfd p[2] = {{.fd = zero_fd(), .events = POLLIN},
				      {.fd = uring_fd(), .events = POLLIN}};
		struct zero_job *job, *next;

		poll(p, uring_fd() >= 0 ? 2 : 1, DRAIN_POLL_MS);
		for (job = zero_take_done(); job; job = next) {
			next = job->next;
			judge(fx->s, session_zero_done(job));
		}
		uring_reap();
		uring_flush();
		FUZZ_CHECK(now_ns() < deadline, "zeroing or io_uring work never completed");
	}
}

/* Each time a slot is queued its generation moves on, so that a
 * descriptor of an earlier hand-out can never return the slot again. */
static void check_generations(const struct session *s, const struct snapshot *b)
{
	uint64_t bumps = 0;

	for (unsigned i = 0; i < s->nclasses; i++)
		for (uint32_t k = 0; k < s->cls[i].nslots; k++)
			bumps += s->cls[i].slot[k].gen - b->slot[i][k].gen;
	FUZZ_CHECK(bumps == s->st.queued - b->queued, "%llu slots queued, %llu generations",
		   (unsigned long long)(s->st.queued - b->queued), (unsigned long long)bumps);
}

/* Checks after a step that may have zeroed, queued and trimmed. */
static void settle(struct fixture *fx, const struct snapshot *b)
{
	drain(fx);
	if (fx->s->dead)
		return;
	check_consistency(fx->s);
	check_generations(fx->s, b);
	check_zero(fx->s, b);
}

/* ---- race: a thread keeps poking while the daemon reads ---- */

struct race {
	struct session *s;
	struct poke pokes[RACE_POKES];
	unsigned n;
	atomic_bool stop;
};

/* Entries are flipped just ahead of the daemon's head, where it is about
 * to read: a second read of one would likely see the other value. */
static void race_poke(struct session *s, const struct poke *p, bool flip)
{
	struct hak_ring *ret = &s->cls[p->cls].ret;

	if (p->f != F_RET_ENTRY) {
		apply_poke(s, p);
		return;
	}
	/* Pairs with the daemon's release store of head (hak_ring_sc_release). */
	hak_ring_store_entry(ret, hak_load_acquire(&ret->s->head) + p->idx, flip ? p->v2 : p->v);
}

static void *race_thread(void *arg)
{
	struct race *r = arg;
	bool flip = false;

	while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
		for (unsigned i = 0; i < r->n; i++)
			race_poke(r->s, &r->pokes[i], flip);
		flip = !flip;
	}
	return NULL;
}

/* Pushes what the daemon would accept now: the current generation of the
 * first slot of the class that is out, from start on. */
static void push_acceptable(struct fixture *fx, unsigned cls, uint8_t start)
{
	const struct session_class *c = &fx->s->cls[cls];

	for (uint32_t j = 0; j < c->nslots; j++) {
		uint32_t k = (start + j) % c->nslots;

		if (c->slot[k].state == SLOT_OUT) {
			client_push(fx, cls, hak_desc_make(k, c->slot[k].gen));
			return;
		}
	}
}

static void race(struct fixture *fx, struct fuzz_in *in)
{
	struct race r = {.s = fx->s, .n = 1 + fuzz_u8(in) % RACE_POKES};
	uint8_t how = fuzz_u8(in);
	unsigned rounds = 1 + (how >> 1) % RACE_ROUNDS;
	struct snapshot b;
	pthread_t t;

	for (unsigned i = 0; i < r.n; i++)
		read_poke(in, fx, fuzz_u8(in) % fx->s->nclasses, true, &r.pokes[i]);
	snapshot(fx->s, &b);
	atomic_init(&r.stop, false);
	FUZZ_CHECK(pthread_create(&t, NULL, race_thread, &r) == 0, "pthread_create");
	for (unsigned i = 0; i < rounds && !fx->s->dead; i++) {
		/* Something to read each round, while the entries flip. */
		push_acceptable(fx, r.pokes[0].cls, fuzz_u8(in));
		if (how & 1)
			judge(fx->s, session_service(fx->s));
		else
			session_collect_returns(fx->s);
	}
	if (how & 1)
		drain(fx);
	atomic_store_explicit(&r.stop, true, memory_order_relaxed);
	pthread_join(t, NULL);
	if (how & 1)
		settle(fx, &b);
	else
		check_collect(fx, &b, rounds);
}

/* ---- one input ---- */

static void run_op(struct fixture *fx, struct fuzz_in *in)
{
	enum op op = fuzz_u8(in) % OP_NR;
	unsigned cls = fuzz_u8(in) % fx->s->nclasses;
	struct snapshot b;
	struct poke p;

	snapshot(fx->s, &b);
	switch (op) {
	case OP_PUSH_HELD:
		client_push_held(fx, fuzz_u8(in));
		break;
	case OP_PUSH:
		client_push(fx, cls, read_desc(in, &fx->s->cls[cls]));
		break;
	case OP_POKE:
		read_poke(in, fx, cls, false, &p);
		apply_poke(fx->s, &p);
		break;
	case OP_POP:
		client_pop(fx, cls);
		break;
	case OP_COLLECT:
		session_collect_returns(fx->s);
		check_collect(fx, &b, 1);
		break;
	case OP_SERVICE:
		judge(fx->s, session_service(fx->s));
		settle(fx, &b);
		break;
	case OP_TICK:
		fx->clock += (1 + fuzz_u8(in)) * NSEC_PER_MSEC;
		judge(fx->s, session_tick(fx->s, fx->clock, conf->trim_idle_ms * NSEC_PER_MSEC));
		settle(fx, &b);
		break;
	case OP_TRIM:
		session_trim(fx->s, true);
		settle(fx, &b);
		break;
	default:
		race(fx, in);
		break;
	}
}

static void setup(struct fixture *fx, struct fuzz_in *in)
{
	uint64_t pool = (1 + fuzz_u8(in) % POOL_UNITS) * POOL_UNIT;
	struct ucred cred = {.pid = getpid(), .uid = getuid(), .gid = getgid()};
	int r;

	conf->ready_high = 1 + fuzz_u8(in) % 100;
	conf->ready_low = fuzz_u8(in) % conf->ready_high;
	memset(fx, 0, sizeof(*fx));
	fx->clock = NSEC_PER_SEC; /* 0 means "not since" to the trimmer */
	r = session_new(conf, 0, 1, -1, &cred, pool, &fx->s);
	FUZZ_CHECK(r == 0, "session_new: %s", strerror(-r));
	for (unsigned i = 0; i < fx->s->nclasses; i++) {
		FUZZ_CHECK(fx->s->cls[i].nslots <= MAX_SLOTS, "class %u: too many slots", i);
		note_seen(fx, i, 0); /* a fresh ring holds zeroes */
	}
}

static void teardown(struct fixture *fx)
{
	if (!fx->s->dead)
		session_close(fx->s);
	drain(fx);
	session_unref(fx->s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fixture fx;
	struct fuzz_in in = {data, size};

	setup(&fx, &in);
	for (unsigned i = 0; i < MAX_OPS && fuzz_more(&in) && !fx.s->dead; i++)
		run_op(&fx, &in);
	teardown(&fx);
	return 0;
}
