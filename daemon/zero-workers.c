/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Zeroing worker threads.  The main loop submits batches of slots; a worker
 * zeroes them through the daemon's mapping of the pool, puts the batch on a
 * completion list and wakes the main loop through an eventfd.  Only the main
 * loop changes slot states; workers see nothing but addresses.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "hak_layout.h"
#include "log.h"
#include "util.h"
#include "zero.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct zero_job *queue, **queue_tail; /* FIFO, under lock */
	struct zero_job *done;		      /* LIFO, under lock */
	unsigned unsignalled;		      /* done, main loop not woken yet; under lock */
	uint64_t wakeups;		      /* a sleeping worker woken; atomic */
	bool stopping;			      /* under lock */
	pthread_t thread[ZERO_MAX_THREADS];
	unsigned nthreads;
	int efd;
	atomic_int nice;
	enum zero_method method;       /* slots below ZERO_LARGE_SLOT */
	enum zero_method method_large; /* the others */
	double gbps[ZERO_METHOD_NR];
	struct zero_stats stats; /* main thread only */
} zq = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.efd = -1,
	.method = ZERO_MEMSET,
	.method_large = ZERO_MEMSET,
};

/*
 * A client can make the daemon's access to its pool fault: with huge pages,
 * a hole it punched into a returned slot needs a new huge page, and none
 * may be left (SIGBUS).  A worker catches that instead of dying: the job
 * fails and the client is cut off.  Any other SIGBUS keeps its default.
 */
static __thread sigjmp_buf guard_jmp;
static __thread volatile sig_atomic_t guard_active;

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	if (guard_active)
		siglongjmp(guard_jmp, 1);
	/* Not ours: the default action happens when the access restarts. */
	signal(sig, SIG_DFL);
}

static int install_sigbus_guard(void)
{
	struct sigaction sa = {.sa_sigaction = sigbus_handler, .sa_flags = SA_SIGINFO};

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) < 0 ? -errno : 0;
}

/* mincore() vector covering a job's slots, grown as needed; per worker. */
static __thread unsigned char *resident;
static __thread size_t resident_len;
/* false when the vector could not be read for this job: then every page is
 * written, as a zeroing daemon without this check would. */
static __thread bool resident_ok;

/* Reads which pages of slots [lo, hi] are in the pool's page cache. */
static int job_residency(const struct zero_job *job, uint32_t lo, uint32_t hi)
{
	size_t len = (size_t)(hi - lo + 1) * job->slot_size, pages = len / HAK_PAGE_SIZE;

	if (pages > resident_len) {
		unsigned char *v = realloc(resident, pages);

		if (!v)
			return -ENOMEM;
		resident = v;
		resident_len = pages;
	}
	return mincore(job->base + (uint64_t)lo * job->slot_size, len, resident) < 0 ? -errno : 0;
}

/*
 * Zeroes one slot without allocating memory: the pages in the pool are
 * written with zeroes; a page that is not (a hole the client punched, or
 * swapped out) is punched, which reads as zero too.  Writing such a page
 * would allocate it and charge it to the daemon's cgroup instead of the
 * client's: a client could push the daemon to its MemoryMax.  (A client
 * punching between the mincore and the write still gets a page charged to
 * the daemon, until it punches that page again.)
 */
static void zero_slot(const struct zero_job *job, uint32_t slot, uint32_t lo, enum zero_method m)
{
	size_t pages = job->slot_size / HAK_PAGE_SIZE;
	const unsigned char *v = resident + (size_t)(slot - lo) * pages;
	char *p = job->base + (uint64_t)slot * job->slot_size;
	uint64_t off = job->file_off + (uint64_t)slot * job->slot_size;

	if (!resident_ok) {
		zero_range_unfenced(m, p, job->slot_size);
		return;
	}
	for (size_t i = 0, j; i < pages; i = j) {
		for (j = i + 1; j < pages && (v[j] & 1) == (v[i] & 1); j++)
			;
		if (v[i] & 1)
			zero_range_unfenced(m, p + i * HAK_PAGE_SIZE, (j - i) * HAK_PAGE_SIZE);
		else
			fallocate(job->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)(off + i * HAK_PAGE_SIZE),
				  (off_t)((j - i) * HAK_PAGE_SIZE));
	}
}

static void job_span(const struct zero_job *job, uint32_t *lo, uint32_t *hi)
{
	*lo = *hi = job->slot[0];
	for (unsigned i = 1; i < job->n; i++) {
		if (job->slot[i] < *lo)
			*lo = job->slot[i];
		if (job->slot[i] > *hi)
			*hi = job->slot[i];
	}
}

static int run_job(struct zero_job *job, enum zero_method m)
{
	volatile unsigned i = 0;
	volatile uint32_t lo;
	uint32_t first, hi;
	int r;

	job_span(job, &first, &hi);
	lo = first;
	r = job_residency(job, first, hi);
	resident_ok = r == 0;
	if (r < 0)
		log_msg(LOG_DEBUG, "zeroing: cannot read page residency: %s", strerror(-r));
	if (sigsetjmp(guard_jmp, 1)) {
		guard_active = 0;
		return -EFAULT;
	}
	guard_active = 1;
	for (; i < job->n; i++)
		zero_slot(job, job->slot[i], lo, m);
	guard_active = 0;
	/* One fence per job, before complete() publishes it. */
	zero_fence();
	return 0;
}

/* Per-thread nice: on Linux, setpriority on a thread id affects that
 * thread alone. */
static void apply_nice(int *applied)
{
	int want = atomic_load_explicit(&zq.nice, memory_order_relaxed);

	if (want == *applied)
		return;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), want) < 0)
		log_msg(LOG_WARNING, "zeroing thread: cannot set nice %d: %m", want);
	*applied = want;
}

static struct zero_job *next_job(void)
{
	struct zero_job *job;

	pthread_mutex_lock(&zq.lock);
	while (!zq.queue && !zq.stopping) {
		pthread_cond_wait(&zq.cond, &zq.lock);
		if (zq.queue)
			__atomic_add_fetch(&zq.wakeups, 1, __ATOMIC_RELAXED);
	}
	job = zq.stopping ? NULL : zq.queue;
	if (job) {
		zq.queue = job->next;
		if (!zq.queue)
			zq.queue_tail = &zq.queue;
	}
	pthread_mutex_unlock(&zq.lock);
	return job;
}

/*
 * Each wakeup of the main loop costs more than zeroing a few dozen 4 KiB
 * slots (a context switch, on a VM an IPI), so completions are signalled in
 * batches: when the worker has nothing queued (it would sleep next, and the
 * main loop must refill and hand out more), else every ZERO_SIGNAL_JOBS
 * jobs, which bounds how long a finished job waits to be published.
 */
static void complete(struct zero_job *job)
{
	static const uint64_t one = 1;
	bool signal;

	pthread_mutex_lock(&zq.lock);
	job->next = zq.done;
	zq.done = job;
	zq.unsignalled++;
	signal = !zq.queue || zq.stopping || zq.unsignalled >= ZERO_SIGNAL_JOBS;
	if (signal)
		zq.unsignalled = 0;
	pthread_mutex_unlock(&zq.lock);
	/* A full counter (never, in practice) still leaves the fd readable. */
	if (signal && write(zq.efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_msg(LOG_ERR, "zeroing thread: cannot signal completion: %m");
}

static void *worker(void *arg)
{
	int applied = 0;
	struct zero_job *job;

	apply_nice(&applied);
	while ((job = next_job())) {
		uint64_t t0;

		apply_nice(&applied);
		t0 = now_ns();
		job->error = run_job(job, zero_method_for(job->slot_size));
		job->ns = now_ns() - t0;
		complete(job);
	}
	free(resident);
	resident = NULL;
	resident_len = 0;
	return NULL;
}

/* " nt 120 rep-stosb 95 memset 99": the measured methods' figures. */
static const char *figures(char *line, size_t len, const double v[ZERO_METHOD_NR], int decimals)
{
	size_t n = 0;

	line[0] = '\0';
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR && n < len; m++)
		if (v[m] > 0)
			n += (size_t)snprintf(line + n, len - n, " %s %.*f", zero_method_name(m),
					      decimals, v[m]);
	return line;
}

#define FIGURES_MAX 128
#define NS_DECIMALS 0
#define GBPS_DECIMALS 2

/* Which methods, then why: from what figures, by which criterion, measured
 * now or kept from an earlier start. */
static void log_choice(const struct zero_pick *p, const char *dir, int e2e_err)
{
	char a[FIGURES_MAX], b[FIGURES_MAX];
	const char *source = p->cached ? "kept from an earlier start"
			     : dir     ? "measured now and kept"
				       : "measured now";

	log_msg(LOG_INFO, "zeroing with %s, and %s for slots of %uK and more (%s, %s)",
		zero_method_name(p->small), zero_method_name(p->large), ZERO_LARGE_SLOT >> 10,
		p->end_to_end ? "cheapest end to end" : "fastest by bandwidth", source);
	if (p->end_to_end)
		log_msg(LOG_INFO,
			"zeroing: ns per page end to end, 4K slots:%s; 2M slots:%s; a method "
			"within "
			"%d%% of the cheapest is a tie, and a tie keeps the earlier choice%s%s%s",
			figures(a, sizeof(a), p->small_ns, NS_DECIMALS),
			figures(b, sizeof(b), p->large_ns, NS_DECIMALS), ZERO_PICK_MARGIN_PCT,
			dir ? "; remove " : "", dir ? dir : "",
			dir ? "/zero-method to measure again" : "");
	else
		log_msg(LOG_INFO,
			"zeroing: GB/s:%s; a method within %d%% of the fastest is a tie, and a tie "
			"keeps the earlier choice; end to end not measured: %s",
			figures(a, sizeof(a), p->gbps, GBPS_DECIMALS), ZERO_PICK_MARGIN_PCT,
			e2e_err == -ENOTSUP ? "no second CPU to run the client on"
					    : strerror(-e2e_err));
}

/* $STATE_DIRECTORY: systemd's StateDirectory= (the first, if several). */
static const char *state_dir(char *buf, size_t len)
{
	const char *env = getenv("STATE_DIRECTORY");

	if (!env || !*env)
		return NULL;
	snprintf(buf, len, "%.*s", (int)strcspn(env, ":"), env);
	return buf;
}

/* Measures bandwidth and picks by it; a near-tie keeps p->prev_small. */
static void measure_bandwidth(struct zero_pick *p)
{
	double cost[ZERO_METHOD_NR] = {0};

	memset(p->small_ns, 0, sizeof(p->small_ns));
	memset(p->large_ns, 0, sizeof(p->large_ns));
	p->end_to_end = false;
	if (zero_measure(p->gbps) < 0)
		memset(p->gbps, 0, sizeof(p->gbps));
	for (int m = ZERO_AUTO + 1; m < ZERO_METHOD_NR; m++)
		cost[m] = p->gbps[m] > 0 ? 1 / p->gbps[m] : 0;
	p->small = p->large = zero_pick_cheapest(cost, ZERO_MEMSET, p->prev_small);
}

/* The workers read the methods without a lock: a job started just before a
 * change zeroes with the method before, which is as right. */
static void apply_choice(const struct zero_pick *p)
{
	__atomic_store_n(&zq.method, p->small, __ATOMIC_RELAXED);
	__atomic_store_n(&zq.method_large, p->large, __ATOMIC_RELAXED);
}

static void keep_choice(const struct zero_pick *p, const char *dir, const char *cpu, int e2e_err)
{
	if (dir && zero_cache_save(dir, cpu, p) < 0)
		log_msg(LOG_WARNING, "zeroing: cannot keep the choice in %s: %m", dir);
	apply_choice(p);
	log_choice(p, dir, e2e_err);
}

/*
 * Under systemd (a state directory), a choice not kept yet is measured end
 * to end by a thread of its own while the daemon already serves with the
 * bandwidth pick: the measurement takes up to a second on a busy machine,
 * and the first client, whose connection started the daemon, would wait
 * that long for its handshake (libhakclient gives up after one).  It runs
 * once per CPU: later starts take the kept choice.
 */
static struct {
	pthread_t thread;
	bool running; /* main thread only */
	struct zero_pick p;
	char dir[PATH_MAX], cpu[ZERO_CPU_MAX];
} later;

static void *measure_later(void *arg)
{
	int r = zero_pick_end_to_end(&later.p);

	keep_choice(&later.p, later.dir, later.cpu, r);
	return NULL;
}

static bool start_measure_later(const struct zero_pick *p, const char *dir, const char *cpu)
{
	later.p = *p;
	snprintf(later.dir, sizeof(later.dir), "%s", dir);
	snprintf(later.cpu, sizeof(later.cpu), "%s", cpu);
	if (pthread_create(&later.thread, NULL, measure_later, NULL) != 0)
		return false;
	later.running = true;
	log_msg(LOG_INFO,
		"zeroing with %s for now (fastest by bandwidth); measuring end to end meanwhile, "
		"once for this CPU",
		zero_method_name(p->small));
	return true;
}

/* auto: the choice kept in the state directory for this CPU, when it was
 * measured end to end; else the cheapest end to end (zero-pick.c), for
 * small and for large slots, or the fastest by bandwidth where that cannot
 * be measured, then kept.  A configured method: that one for every slot. */
static void pick_auto(void)
{
	struct zero_pick p = {0};
	char dirbuf[PATH_MAX], cpu[ZERO_CPU_MAX];
	const char *dir = state_dir(dirbuf, sizeof(dirbuf));

	zero_cache_cpu(cpu, sizeof(cpu));
	if (dir && zero_cache_load(dir, cpu, &p) == 0 && p.end_to_end) {
		memcpy(zq.gbps, p.gbps, sizeof(zq.gbps));
		apply_choice(&p);
		log_choice(&p, dir, 0);
		return;
	}
	/* A bandwidth-only choice is a tie-breaker for the next. */
	p.prev_small = p.cached ? p.small : ZERO_AUTO;
	p.prev_large = p.cached ? p.large : ZERO_AUTO;
	p.cached = false;
	measure_bandwidth(&p);
	memcpy(zq.gbps, p.gbps, sizeof(zq.gbps));
	apply_choice(&p);
	if (dir && start_measure_later(&p, dir, cpu))
		return;
	keep_choice(&p, dir, cpu, zero_pick_end_to_end(&p));
}

static void pick_method(enum zero_method want)
{
	if (want == ZERO_AUTO) {
		pick_auto();
		return;
	}
	if (zero_measure(zq.gbps) < 0)
		memset(zq.gbps, 0, sizeof(zq.gbps));
	if (!zero_method_supported(want)) {
		enum zero_method best = zero_fastest(zq.gbps);

		log_msg(LOG_WARNING, "zero_method %s is not supported on this CPU; using %s",
			zero_method_name(want), zero_method_name(best));
		want = best;
	}
	zq.method = zq.method_large = want;
	log_msg(LOG_INFO, "zeroing with %s (configured)", zero_method_name(want));
}

static int start_threads(unsigned threads)
{
	for (unsigned i = 0; i < threads; i++) {
		int r = pthread_create(&zq.thread[i], NULL, worker, NULL);

		if (r != 0)
			return -r;
		zq.nthreads++;
	}
	return 0;
}

int zero_init(unsigned threads, enum zero_method method, int nice)
{
	int r;

	if (threads == 0 || threads > ZERO_MAX_THREADS)
		return -EINVAL;
	zq.queue = NULL;
	zq.queue_tail = &zq.queue;
	zq.done = NULL;
	zq.unsignalled = 0;
	zq.stopping = false;
	atomic_store(&zq.nice, nice);
	zq.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (zq.efd < 0)
		return -errno;
	r = install_sigbus_guard();
	if (r < 0)
		return r;
	pick_method(method);
	r = start_threads(threads);
	if (r < 0)
		zero_stop();
	return r;
}

/* Moves the jobs no worker started to the completion list, cancelled. */
static void cancel_queued(void)
{
	struct zero_job *job;

	while ((job = zq.queue)) {
		zq.queue = job->next;
		job->error = -ECANCELED;
		job->next = zq.done;
		zq.done = job;
	}
	zq.queue_tail = &zq.queue;
}

void zero_stop(void)
{
	if (later.running)
		pthread_join(later.thread, NULL);
	later.running = false;
	pthread_mutex_lock(&zq.lock);
	zq.stopping = true;
	pthread_cond_broadcast(&zq.cond);
	pthread_mutex_unlock(&zq.lock);
	for (unsigned i = 0; i < zq.nthreads; i++)
		pthread_join(zq.thread[i], NULL);
	zq.nthreads = 0;
	pthread_mutex_lock(&zq.lock);
	cancel_queued();
	pthread_mutex_unlock(&zq.lock);
}

void zero_fini(void)
{
	if (zq.efd >= 0)
		close(zq.efd);
	zq.efd = -1;
}

int zero_fd(void)
{
	return zq.efd;
}

void zero_set_nice(int nice)
{
	atomic_store_explicit(&zq.nice, nice, memory_order_relaxed);
}

void zero_submit(struct zero_job *job)
{
	job->next = NULL;
	job->error = 0;
	pthread_mutex_lock(&zq.lock);
	*zq.queue_tail = job;
	zq.queue_tail = &job->next;
	pthread_cond_signal(&zq.cond);
	pthread_mutex_unlock(&zq.lock);
}

static void count_done(const struct zero_job *job)
{
	zq.stats.jobs++;
	zq.stats.ns += job->ns;
	if (job->error == -EFAULT)
		zq.stats.failed++;
	else if (job->error == 0)
		zq.stats.pages += job->n * (job->slot_size / HAK_PAGE_SIZE);
}

struct zero_job *zero_take_done(void)
{
	struct zero_job *list;
	uint64_t v;

	if (zq.efd >= 0 && read(zq.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_msg(LOG_ERR, "zeroing: cannot read completion eventfd: %m");
	pthread_mutex_lock(&zq.lock);
	list = zq.done;
	zq.done = NULL;
	pthread_mutex_unlock(&zq.lock);
	for (struct zero_job *j = list; j; j = j->next)
		count_done(j);
	return list;
}

void zero_get_stats(struct zero_stats *st)
{
	*st = zq.stats;
}

uint64_t zero_wakeups(void)
{
	return __atomic_load_n(&zq.wakeups, __ATOMIC_RELAXED);
}

enum zero_method zero_current_method(void)
{
	return __atomic_load_n(&zq.method, __ATOMIC_RELAXED);
}

enum zero_method zero_method_for(uint64_t slot_size)
{
	return slot_size < ZERO_LARGE_SLOT ? __atomic_load_n(&zq.method, __ATOMIC_RELAXED)
					   : __atomic_load_n(&zq.method_large, __ATOMIC_RELAXED);
}

double zero_current_gbps(void)
{
	return zq.gbps[zero_current_method()];
}

const double *zero_measured_gbps(void)
{
	return zq.gbps;
}
