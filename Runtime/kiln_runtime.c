/* kiln_runtime.c: instance life cycle, arenas, weight access, state files and
 * error strings for compiled Kiln models. See kiln_runtime.h for the rules
 * every function follows (0 / -1 results, one-sentence errors, where
 * allocation may happen).
 *
 * State file format (version 1), all integers in the writer's byte order
 * (little-endian on every supported host; a file from a host of the other
 * order is refused):
 *
 *   offset  size  field
 *        0     8  magic "KILNSTAT"
 *        8     4  uint32 format version (1)
 *       12     4  uint32 name length L (bytes, no terminating NUL)
 *       16     8  int64  state_bytes S
 *       24     8  int64  iteration (optimizer steps taken)
 *       32     8  uint64 seed
 *       40     8  uint64 layout hash (weight names, shapes, offsets, counts)
 *       48     L  model name
 *     48+L     S  state block (weights in get_weights() order, then slots)
 *   48+L+S     8  uint64 checksum of bytes [0, 48+L+S) (see checksum())
 *
 * A file of another model (name, state size or layout hash differ), of another
 * size (truncated, trailing bytes) or with a wrong checksum is refused with one
 * sentence and the instance keeps its state. Saving is crash-safe: see
 * remove_stale_temps() and kiln_save_weights().
 */
#define _POSIX_C_SOURCE 200809L
#include "kiln_runtime.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KILN_ERROR_SIZE 512
#define KILN_ALIGN 64
#define STATE_MAGIC "KILNSTAT"
#define STATE_VERSION 1u
#define STATE_HEADER_BYTES 48

struct kiln_instance {
    const kiln_model_desc *d;
    float *state;                  /* KILN_ALIGN-aligned, d->state_bytes */
    int64_t iteration;
    uint64_t seed;
    int threads;                   /* see kiln_set_num_threads */
    float *predict_arena;
    int64_t predict_size;          /* bytes the predict arena holds */
    float *train_arena;
    int64_t train_size;            /* bytes the train arena holds */
    int64_t reserved_rows;         /* rows kiln_reserve asked for (predict runs in chunks of them) */
    int64_t *in_row_bytes;         /* per input, for the steps of the current call */
    int64_t *out_row_bytes;        /* per output; likewise */
    const void **io_ptrs;          /* num_inputs + num_outputs scratch pointers */
    void **out_ptrs;               /* num_outputs scratch pointers */
    float metrics[KILN_MAX_METRICS];  /* of the last train/evaluate step */
    char error[KILN_ERROR_SIZE];
    _Atomic int busy;              /* a call runs on this instance (see enter()) */
    uint64_t id;                   /* unique in the process: names the instance a busy refusal was for */
    int check_inputs;              /* kiln_set_check_inputs */
};

static _Thread_local char tls_error[KILN_ERROR_SIZE];

/* ------------------------------------------------------------------ errors */

static void verror(char *buf, const char *fmt, va_list ap) {
    vsnprintf(buf, KILN_ERROR_SIZE, fmt, ap);
}

/* Sets the error of inst, or the thread-local one when inst is NULL. */
static int fail(kiln_instance *inst, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror(inst ? inst->error : tls_error, fmt, ap);
    va_end(ap);
    return -1;
}

static void clear_error(kiln_instance *inst) { inst->error[0] = '\0'; }

/* One call at a time per instance. Every entry point that reads or changes the
 * instance's state takes its busy flag with one compare-and-swap (enter) and
 * gives it back on return (leave). A call that finds the flag taken (another
 * thread is inside a call on the same instance) changes nothing and fails; its
 * error is kept per thread (the instance's own buffer belongs to the running
 * call), and kiln_last_error(inst) returns it on that thread until its next
 * call on the instance. */
static _Thread_local uint64_t tls_busy_id;         /* the instance a call of this thread was refused on; 0: none */
static _Thread_local char tls_busy_error[KILN_ERROR_SIZE];
static _Atomic uint64_t next_instance_id = 1;

static int enter(kiln_instance *inst, const char *fname) {
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&inst->busy, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        tls_busy_id = inst->id;
        snprintf(tls_busy_error, KILN_ERROR_SIZE,
                 "model '%s' is busy: another thread is in a call on this instance, so %s was refused "
                 "(use one instance per thread, or serialize the calls).",
                 inst->d->name ? inst->d->name : "(unnamed)", fname);
        return -1;
    }
    tls_busy_id = 0;
    clear_error(inst);
    return 0;
}

static int leave(kiln_instance *inst, int rc) {
    atomic_store_explicit(&inst->busy, 0, memory_order_release);
    return rc;
}

static const char *model_name(const kiln_instance *inst) {
    return inst->d->name ? inst->d->name : "(unnamed)";
}

static const char *input_name(const kiln_model_desc *d, int i) {
    return d->inputs[i].name ? d->inputs[i].name : "(unnamed)";
}

static const char *output_name(const kiln_model_desc *d, int i) {
    return d->outputs[i].name ? d->outputs[i].name : "(unnamed)";
}

/* ------------------------------------------------------------------ memory */

/* Zeroed, KILN_ALIGN-aligned memory from calloc (freed with aligned_free): large
 * blocks come as fresh pages the kernel zeroes when first touched, so an arena
 * sized for the default capacity costs memory only for the rows calls use. The
 * block calloc returned is stored just before the aligned pointer. */
static void *aligned_zalloc(int64_t bytes) {
    if (bytes < 0) return NULL;
    uint64_t size = ((uint64_t)bytes + KILN_ALIGN - 1) / KILN_ALIGN * KILN_ALIGN;
    if (size == 0) size = KILN_ALIGN;
    if (size > (uint64_t)SIZE_MAX - KILN_ALIGN) return NULL;
    void *raw = calloc(1, (size_t)size + KILN_ALIGN);
    if (!raw) return NULL;
    /* calloc's blocks are 16-aligned: the gap before the aligned pointer is 16 to 64 bytes. */
    uintptr_t p = ((uintptr_t)raw + KILN_ALIGN) & ~(uintptr_t)(KILN_ALIGN - 1);
    memcpy((void *)(p - sizeof raw), &raw, sizeof raw);
    return (void *)p;
}

static void aligned_free(void *p) {
    if (!p) return;
    void *raw;
    memcpy(&raw, (char *)p - sizeof raw, sizeof raw);
    free(raw);
}

/* The sizes of one program's arena (see kiln_abi.h). */
typedef struct { int64_t per_row_step, per_row, per_step, fixed; } arena_plan;

static arena_plan predict_plan(const kiln_model_desc *d) {
    return (arena_plan){d->predict_arena_per_row_step, d->predict_arena_per_sample, d->predict_arena_per_step,
                        d->predict_arena_fixed};
}
static arena_plan train_plan(const kiln_model_desc *d) {
    return (arena_plan){d->train_arena_per_row_step, d->train_arena_per_sample, d->train_arena_per_step,
                        d->train_arena_fixed};
}

/* a * b + c, or -1 when negative or past 2^62. */
static int64_t mul_add(int64_t a, int64_t b, int64_t c) {
    const int64_t limit = (int64_t)1 << 62;
    if (a < 0 || b < 0 || c < 0 || (a > 0 && b > (limit - c) / a)) return -1;
    return a * b + c;
}

/* Bytes of an arena for `rows` rows of `steps` steps, or -1 on overflow. */
static int64_t arena_bytes(arena_plan p, int64_t rows, int64_t steps) {
    int64_t per_row = mul_add(p.per_row_step, steps, p.per_row);
    int64_t fixed = mul_add(p.per_step, steps, p.fixed);
    if (per_row < 0 || fixed < 0) return -1;
    return mul_add(per_row, rows, fixed);
}

/* Rows an arena of `size` bytes holds at `steps` steps (at least 0). */
static int64_t arena_rows(arena_plan p, int64_t size, int64_t steps) {
    int64_t per_row = mul_add(p.per_row_step, steps, p.per_row);
    int64_t fixed = mul_add(p.per_step, steps, p.fixed);
    if (per_row < 0 || fixed < 0 || size < fixed) return 0;
    return per_row == 0 ? INT64_MAX : (size - fixed) / per_row;
}

static int64_t default_capacity(arena_plan p) {
    int64_t cap = KILN_DEFAULT_CAPACITY;
    int64_t per_row = p.per_row + p.per_row_step;
    if (per_row > 0 && per_row > KILN_DEFAULT_ARENA_BUDGET / cap) {
        cap = KILN_DEFAULT_ARENA_BUDGET / per_row;
        if (cap < 1) cap = 1;
    }
    return cap;
}

/* Makes *arena hold `rows` rows of `steps` steps; leaves it unchanged on error. */
static int grow_arena(kiln_instance *inst, float **arena, int64_t *size, arena_plan p, int64_t rows, int64_t steps,
                      const char *which) {
    int64_t bytes = arena_bytes(p, rows, steps);
    if (bytes < 0)
        return fail(inst, "the %s arena for %lld rows of %lld steps would overflow 64-bit sizes.", which, (long long)rows,
                    (long long)steps);
    if (bytes <= *size && *arena) return 0;
    float *q = aligned_zalloc(bytes);
    if (!q) return fail(inst, "out of memory allocating the %s arena for %lld rows (%lld bytes).", which,
                        (long long)rows, (long long)bytes);
    aligned_free(*arena);
    *arena = q;
    *size = bytes;
    return 0;
}

/* Bytes per row of a tensor: the product of the dims after the first (a free
 * dim counts `steps`), times 4 (f32 and i32); -1 on overflow. */
static int64_t row_bytes(const kiln_tensor_desc *t, int64_t steps) {
    if (t->rank < 1 || t->rank > KILN_MAX_RANK) return -1;
    int64_t b = 4;
    for (int k = 1; k < t->rank; k++) {
        int64_t dim = t->shape[k] < 0 ? steps : t->shape[k];
        if (dim < 0 || (dim > 0 && b > INT64_MAX / dim)) return -1;
        b *= dim;
    }
    return b;
}

/* The steps of a call: the model's (1) when it has no free time axis and steps is 0 or 1. */
static int check_steps(kiln_instance *inst, int64_t *steps, const char *fname) {
    const kiln_model_desc *d = inst->d;
    if (d->free_steps) {
        if (*steps < 1)
            return fail(inst, "model '%s' takes sequences of any length: %s needs the number of time steps (got %lld); "
                        "use the _seq functions of its header.", model_name(inst), fname, (long long)*steps);
        return 0;
    }
    if (*steps > 1)
        return fail(inst, "model '%s' has a fixed number of time steps; %s was given %lld steps.", model_name(inst), fname,
                    (long long)*steps);
    *steps = 1;
    return 0;
}

/* Sets the row sizes of the inputs, outputs (and targets) for a call of `steps` steps. */
static int set_row_bytes(kiln_instance *inst, int64_t steps, const kiln_tensor_desc *outs) {
    const kiln_model_desc *d = inst->d;
    for (int i = 0; i < d->num_inputs; i++)
        if ((inst->in_row_bytes[i] = row_bytes(&d->inputs[i], steps)) < 0)
            return fail(inst, "input '%s' of %lld steps is too large.", input_name(d, i), (long long)steps);
    for (int i = 0; i < d->num_outputs; i++)
        if ((inst->out_row_bytes[i] = row_bytes(&outs[i], steps)) < 0)
            return fail(inst, "output '%s' of %lld steps is too large.", output_name(d, i), (long long)steps);
    return 0;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t mix64(uint64_t z) {            /* splitmix64 */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t kiln_step_seed(uint64_t seed, int64_t iteration) {
    return mix64(mix64(seed) ^ (uint64_t)iteration);
}

/* FNV-1a style over 64-bit words (then the tail bytes), continuing from h. */
static uint64_t checksum(uint64_t h, const unsigned char *p, size_t n) {
    const uint64_t prime = 0x100000001B3ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * prime;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * prime;
    return h;
}
#define CHECKSUM_START 0xCBF29CE484222325ull

static uint64_t hash_str(uint64_t h, const char *s) {
    if (!s) s = "";
    return checksum(h, (const unsigned char *)s, strlen(s) + 1);
}

static uint64_t hash_i64(uint64_t h, int64_t v) {
    return checksum(h, (const unsigned char *)&v, sizeof v);
}

/* Identifies the state layout: two models with the same name and state size
 * but different weights do not load each other's files. */
static uint64_t layout_hash(const kiln_model_desc *d) {
    uint64_t h = hash_str(CHECKSUM_START, d->name);
    h = hash_i64(h, d->state_bytes);
    h = hash_i64(h, d->num_weights);
    for (int i = 0; i < d->num_weights; i++) {
        const kiln_weight_desc *w = &d->weights[i];
        h = hash_str(h, w->name);
        h = hash_i64(h, w->rank);
        for (int k = 0; k < w->rank && k < KILN_MAX_RANK; k++) h = hash_i64(h, w->shape[k]);
        h = hash_i64(h, w->offset);
        h = hash_i64(h, w->count);
    }
    return h;
}

/* ----------------------------------------------------------------- threads
 *
 * One pool per library (this file is compiled into each): up to
 * KILN_MAX_THREADS - 1 worker threads, started by kiln_create or
 * kiln_set_num_threads (never inside a call) and stopped when the library
 * is unloaded. A job (kiln_parallel_for) is posted to as many workers as the
 * calling instance's thread count allows; the caller works on it too, and
 * every thread takes the job's items one at a time from a shared counter.
 * A worker that finds nothing spins for KILN_SPIN_NS, then sleeps on its
 * condition variable; the caller takes back the posts no worker has picked up
 * yet once the items are gone, so a sleeping worker never delays a job. One
 * job runs at a time: a call that finds the pool busy (another instance, on
 * another thread) runs its items itself. Which thread runs an item never
 * changes what the item computes, so results do not depend on the thread
 * count.
 *
 * OpenBLAS is told to use one thread (once per instance created): its own
 * threads hand work over with sched_yield spinning, which costs more than it
 * gains on the small products of recurrent models; kiln_gemm splits large
 * products itself. */

/* (The tuning constants below can be overridden with -D, for experiments.) */
#ifndef KILN_SPIN_NS
#define KILN_SPIN_NS 200000          /* a worker spins this long for the next job, then sleeps */
#endif
#ifndef KILN_WAIT_SPIN_NS
#define KILN_WAIT_SPIN_NS 50000      /* a caller waiting for a worker's last item spins this long, then sleeps */
#endif

/* Matrix products: a product of at least KILN_GEMM_MIN_WORK multiply-adds
 * (m·n·k) is cut along the longer of m and n into blocks: one per
 * KILN_GEMM_BLOCK_WORK, at least 2, at most KILN_GEMM_MAX_BLOCKS, each at least
 * KILN_GEMM_MIN_SPAN rows (columns) wide. Below that a product runs as one
 * call of the runtime's kernels. From 2^19: a recurrent step's 15x128x512
 * product (2^19.9) split in two took W2's predict from 10.5-11.5 to 8.7-10.2 ms
 * and its train step from 56 to 47 ms (medians, quiet machine). */
#ifndef KILN_GEMM_MIN_WORK
#define KILN_GEMM_MIN_WORK ((int64_t)1 << 19)
#endif
#ifndef KILN_GEMM_BLOCK_WORK
#define KILN_GEMM_BLOCK_WORK ((int64_t)1 << 23)
#endif
#ifndef KILN_GEMM_MIN_SPAN
#define KILN_GEMM_MIN_SPAN 64
#endif
#ifndef KILN_GEMM_MAX_BLOCKS
#define KILN_GEMM_MAX_BLOCKS 8
#endif

/* Loops: chunks of at least KILN_LOOP_CHUNK_WORK (the generated code calls
 * kiln_parallel_loop only for loops of at least twice that), at most
 * KILN_LOOP_MAX_CHUNKS. */
#ifndef KILN_LOOP_CHUNK_WORK
#define KILN_LOOP_CHUNK_WORK ((int64_t)1 << 15)
#endif
#ifndef KILN_LOOP_MAX_CHUNKS
#define KILN_LOOP_MAX_CHUNKS 64
#endif

extern void openblas_set_num_threads(int threads) __attribute__((weak));

typedef struct kiln_job {
    kiln_task_fn fn;
    void *ctx;
    int64_t count;
    _Atomic int64_t next;           /* the next item to take */
} kiln_job;

typedef struct {
    _Alignas(64) _Atomic(kiln_job *) job;   /* the posted job; taken with an exchange */
    _Atomic int sleeping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
} kiln_worker;

static struct {
    pthread_mutex_t lock;           /* serializes starting and stopping workers */
    _Atomic int workers;            /* started */
    _Atomic int busy;               /* a job is running */
    _Atomic int quit;
    int atfork;                     /* the fork handler is registered */
    /* Of the running job: posts not finished (taken and running, or not yet taken). A
     * worker touches only these after its last item: the job itself is on the caller's stack. */
    _Atomic int pending;
    _Atomic int waiting;            /* the caller sleeps on done until pending is 0 */
    pthread_mutex_t done_lock;
    pthread_cond_t done;
    kiln_worker worker[KILN_MAX_THREADS - 1];
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .done_lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

/* The thread count of the instance whose call runs on this thread (1 outside calls). */
static _Thread_local int tls_threads = 1;
static _Thread_local int tls_in_worker;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void run_items(kiln_job *j) {
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->count) return;
        j->fn(j->ctx, i);
    }
}

/* One post of the running job is done (or taken back). The caller, when asleep, learns
 * it from the last one (seq_cst: either it sees pending 0 or this sees waiting). */
static void finish_post(void) {
    if (atomic_fetch_sub(&pool.pending, 1) == 1 && atomic_load(&pool.waiting)) {
        pthread_mutex_lock(&pool.done_lock);
        pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.done_lock);
    }
}

static void *worker_main(void *arg) {
    kiln_worker *w = arg;
    tls_in_worker = 1;
    for (;;) {
        kiln_job *j = NULL;
        int64_t since = now_ns();
        for (unsigned spin = 1;; spin++) {
            if (atomic_load_explicit(&w->job, memory_order_relaxed) &&
                (j = atomic_exchange_explicit(&w->job, NULL, memory_order_acquire)))
                break;
            if (atomic_load_explicit(&pool.quit, memory_order_relaxed)) return NULL;
            cpu_relax();
            if (spin % 64 || now_ns() - since < KILN_SPIN_NS) continue;
            /* Sleep. The poster stores the job, then reads `sleeping`; this thread
             * sets `sleeping`, then reads the job (both sequentially consistent):
             * one of the two sees the other. */
            pthread_mutex_lock(&w->lock);
            atomic_store(&w->sleeping, 1);
            while (!atomic_load(&w->job) && !atomic_load(&pool.quit)) pthread_cond_wait(&w->wake, &w->lock);
            atomic_store(&w->sleeping, 0);
            pthread_mutex_unlock(&w->lock);
            since = now_ns();
        }
        run_items(j);
        finish_post();
    }
}

static void post(kiln_worker *w, kiln_job *j) {
    atomic_store(&w->job, j);
    if (atomic_load(&w->sleeping)) {
        pthread_mutex_lock(&w->lock);
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
}

int kiln_thread_count(void) { return tls_threads; }

void kiln_add_bias(float *restrict x, const float *restrict bias, int64_t count, int32_t relu) {
    /* Two loops, so that each vectorizes; relu is x > 0 ? x : 0, as the generated kernels have it. */
    if (relu)
        for (int64_t j = 0; j < count; j++) {
            float v = x[j] + bias[j];
            x[j] = v > 0.0f ? v : 0.0f;
        }
    else
        for (int64_t j = 0; j < count; j++) x[j] += bias[j];
}

void kiln_parallel_for(int64_t count, kiln_task_fn fn, void *ctx) {
    int64_t helpers = tls_threads - 1;
    int started = atomic_load_explicit(&pool.workers, memory_order_acquire);
    if (helpers > started) helpers = started;
    if (helpers > count - 1) helpers = count - 1;
    if (helpers < 1 || tls_in_worker || atomic_exchange_explicit(&pool.busy, 1, memory_order_acquire)) {
        for (int64_t i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    kiln_job j = { .fn = fn, .ctx = ctx, .count = count };
    atomic_init(&j.next, 0);
    atomic_store(&pool.pending, (int)helpers);
    for (int64_t h = 0; h < helpers; h++) post(&pool.worker[h], &j);
    run_items(&j);
    /* Posts nobody took (a worker still asleep) are taken back: there is nothing left to do. */
    for (int64_t h = 0; h < helpers; h++)
        if (atomic_exchange(&pool.worker[h].job, NULL) == &j) finish_post();
    /* Wait for the workers' last items: spin a little, then sleep. */
    int64_t since = 0;
    for (unsigned spin = 1; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; spin++) {
        cpu_relax();
        if (spin % 64) continue;
        if (!since) since = now_ns();
        else if (now_ns() - since > KILN_WAIT_SPIN_NS) {
            pthread_mutex_lock(&pool.done_lock);
            atomic_store(&pool.waiting, 1);
            while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.done_lock);
            atomic_store(&pool.waiting, 0);
            pthread_mutex_unlock(&pool.done_lock);
        }
    }
    atomic_store_explicit(&pool.busy, 0, memory_order_release);
}

/* A forked child has none of the parent's threads: it starts with an empty pool. */
static void pool_after_fork(void) {
    atomic_store(&pool.workers, 0);
    atomic_store(&pool.busy, 0);
    atomic_store(&pool.waiting, 0);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_mutex_init(&pool.done_lock, NULL);
    pthread_cond_init(&pool.done, NULL);
}

/* Starts workers until `count` run (as many as can be started). */
static void pool_grow(int count) {
    if (count > KILN_MAX_THREADS - 1) count = KILN_MAX_THREADS - 1;
    if (atomic_load(&pool.workers) >= count) return;
    pthread_mutex_lock(&pool.lock);
    if (!pool.atfork) pool.atfork = pthread_atfork(NULL, NULL, pool_after_fork) == 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* workers take no signals */
    for (int i = atomic_load(&pool.workers); i < count && !atomic_load(&pool.quit); i++) {
        kiln_worker *w = &pool.worker[i];
        atomic_init(&w->job, NULL);
        atomic_init(&w->sleeping, 0);
        if (pthread_mutex_init(&w->lock, NULL) != 0) break;
        if (pthread_cond_init(&w->wake, NULL) != 0) {
            pthread_mutex_destroy(&w->lock);
            break;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_cond_destroy(&w->wake);
            pthread_mutex_destroy(&w->lock);
            break;
        }
        atomic_store_explicit(&pool.workers, i + 1, memory_order_release);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_unlock(&pool.lock);
}

/* Before the library is unmapped (dlclose, exit): no thread may be left running its code. */
__attribute__((destructor)) static void pool_stop(void) {
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.quit, 1);
    int n = atomic_load(&pool.workers);
    for (int i = 0; i < n; i++) {
        kiln_worker *w = &pool.worker[i];
        pthread_mutex_lock(&w->lock);
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
    for (int i = 0; i < n; i++) pthread_join(pool.worker[i].thread, NULL);
    atomic_store(&pool.workers, 0);
    pthread_mutex_unlock(&pool.lock);
}

/* $KILN_NUM_THREADS, else the online CPUs; within [1, KILN_MAX_THREADS]. */
static int default_threads(void) {
    const char *env = getenv("KILN_NUM_THREADS");
    long t = 0;
    if (env && *env) {
        char *end;
        t = strtol(env, &end, 10);
        if (*end || t < 1) t = 0;
    }
    if (t == 0) t = sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    if (t > KILN_MAX_THREADS) t = KILN_MAX_THREADS;
    return (int)t;
}

/* --------------------------------------------------- products and loops */

typedef struct {
    int32_t trans_a, trans_b;
    int64_t m, n, k, lda, ldb, ldc, blocks;
    int by_rows;
    const float *a, *b;
    float beta;
    float *c;
} gemm_job;

/* Block i of C: rows (or columns) [len*i/blocks, len*(i+1)/blocks), by the runtime's kernels
 * (kiln_gemm.c), which compute every element the same way whatever the block. */
static void gemm_block(void *ctx, int64_t i) {
    const gemm_job *g = ctx;
    int64_t len = g->by_rows ? g->m : g->n;
    int64_t lo = len * i / g->blocks, hi = len * (i + 1) / g->blocks;
    if (g->by_rows) {
        const float *a = g->trans_a ? g->a + lo : g->a + lo * g->lda;
        kiln_sgemm(g->trans_a, g->trans_b, hi - lo, g->n, g->k, a, g->lda, g->b, g->ldb, g->beta, g->c + lo * g->ldc, g->ldc);
    } else {
        const float *b = g->trans_b ? g->b + lo * g->ldb : g->b + lo;
        kiln_sgemm(g->trans_a, g->trans_b, g->m, hi - lo, g->k, g->a, g->lda, b, g->ldb, g->beta, g->c + lo, g->ldc);
    }
}

/* How many blocks a product is cut into (1: it runs whole), from its sizes alone (see above). */
static int64_t gemm_block_count(int64_t m, int64_t n, int64_t k) {
    int64_t len = m >= n ? m : n, work = m * n * k;
    int64_t blocks = work / KILN_GEMM_BLOCK_WORK;
    if (blocks < 2) blocks = 2;
    if (blocks > KILN_GEMM_MAX_BLOCKS) blocks = KILN_GEMM_MAX_BLOCKS;
    if (blocks > len / KILN_GEMM_MIN_SPAN) blocks = len / KILN_GEMM_MIN_SPAN;
    return work < KILN_GEMM_MIN_WORK || blocks < 2 ? 1 : blocks;
}

void kiln_gemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
               const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    int64_t blocks = gemm_block_count(m, n, k);
    if (blocks == 1) {
        kiln_sgemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    gemm_job g = { trans_a, trans_b, m, n, k, lda, ldb, ldc, blocks, m >= n, a, b, beta, c };
    kiln_parallel_for(blocks, gemm_block, &g);
}

/* The epilogue of a product: C[r][j] = relu?(C[r][j] + bias[j]) over rows [r0, r1) and
 * columns [c0, c1), as the generated loop it stands for computes it. */
static void bias_epilogue(float *c, int64_t ldc, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const float *bias, int relu) {
    for (int64_t r = r0; r < r1; r++) kiln_add_bias(c + r * ldc + c0, bias + c0, c1 - c0, relu);
}

typedef struct {
    gemm_job g;
    const float *bias;
    int relu;
} gemm_bias_job;

static void gemm_bias_block(void *ctx, int64_t i) {
    const gemm_bias_job *j = ctx;
    gemm_block((void *)&j->g, i);
    int64_t len = j->g.by_rows ? j->g.m : j->g.n;
    int64_t lo = len * i / j->g.blocks, hi = len * (i + 1) / j->g.blocks;
    if (j->g.by_rows) bias_epilogue(j->g.c, j->g.ldc, lo, hi, 0, j->g.n, j->bias, j->relu);
    else bias_epilogue(j->g.c, j->g.ldc, 0, j->g.m, lo, hi, j->bias, j->relu);
}

void kiln_gemm_bias(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float *c, int64_t ldc, const float *bias, int32_t relu) {
    /* The same blocks as kiln_gemm, each finished by the epilogue while it is in cache. */
    int64_t blocks = gemm_block_count(m, n, k);
    gemm_bias_job j = { { trans_a, trans_b, m, n, k, lda, ldb, ldc, blocks, m >= n, a, b, 0.0f, c }, bias, relu };
    if (blocks == 1) gemm_bias_block(&j, 0);
    else kiln_parallel_for(blocks, gemm_bias_block, &j);
}

typedef struct {
    kiln_range_fn fn;
    void *ctx;
    int64_t extent, chunks;
} loop_job;

static void loop_chunk(void *ctx, int64_t i) {
    const loop_job *l = ctx;
    l->fn(l->ctx, l->extent * i / l->chunks, l->extent * (i + 1) / l->chunks);
}

void kiln_parallel_loop(int64_t extent, int64_t work, kiln_range_fn fn, void *ctx) {
    int64_t chunks = work / KILN_LOOP_CHUNK_WORK;
    if (chunks > extent) chunks = extent;
    if (chunks > KILN_LOOP_MAX_CHUNKS) chunks = KILN_LOOP_MAX_CHUNKS;
    if (chunks < 2) {
        if (extent > 0) fn(ctx, 0, extent);
        return;
    }
    loop_job l = { fn, ctx, extent, chunks };
    kiln_parallel_for(chunks, loop_chunk, &l);
}

/* -------------------------------------------------------------- life cycle */

static int check_desc(const kiln_model_desc *d) {
    if (!d) return fail(NULL, "the model description is NULL.");
    if (d->abi_version != KILN_ABI_VERSION)
        return fail(NULL, "the model was compiled for Kiln ABI version %d, but this runtime implements version %d.",
                    (int)d->abi_version, KILN_ABI_VERSION);
    const char *name = d->name ? d->name : "(unnamed)";
    if (d->num_inputs < 0 || d->num_outputs < 0 || d->num_weights < 0 || d->state_bytes < 0 ||
        d->predict_arena_per_sample < 0 || d->predict_arena_fixed < 0 ||
        d->train_arena_per_sample < 0 || d->train_arena_fixed < 0 || d->predict_arena_per_row_step < 0 ||
        d->predict_arena_per_step < 0 || d->train_arena_per_row_step < 0 || d->train_arena_per_step < 0)
        return fail(NULL, "the description of model '%s' has a negative count or size.", name);
    if (!d->predict) return fail(NULL, "model '%s' has no predict function.", name);
    if ((d->num_inputs > 0 && !d->inputs) || (d->num_outputs > 0 && !d->outputs) ||
        (d->num_weights > 0 && !d->weights) || d->init_state_bytes < 0 || d->init_state_bytes > d->state_bytes ||
        (d->init_state_bytes > 0 && !d->init_state))
        return fail(NULL, "the description of model '%s' lacks a table it declares.", name);
    if ((d->train || d->evaluate) && d->num_outputs > 0 && !d->targets)
        return fail(NULL, "model '%s' can train but declares no targets.", name);
    for (int i = 0; i < d->num_weights; i++) {
        const kiln_weight_desc *w = &d->weights[i];
        if (w->offset < 0 || w->count < 0 || w->offset % 4 != 0 ||
            w->count > (d->state_bytes - w->offset) / 4)
            return fail(NULL, "weight %d of model '%s' lies outside its %lld-byte state.", i, name,
                        (long long)d->state_bytes);
    }
    if (d->num_carried < 0 || (d->num_carried > 0 && !d->carried) || d->fixed_batch < 0)
        return fail(NULL, "the description of model '%s' lacks a table it declares.", name);
    for (int32_t i = 0; i < d->num_carried; i++)
        if (d->carried[2 * i] < 0 || d->carried[2 * i + 1] < 0 || d->carried[2 * i + 1] > d->state_bytes - d->carried[2 * i])
            return fail(NULL, "carried state %d of model '%s' lies outside its %lld-byte state.", (int)i, name,
                        (long long)d->state_bytes);
    return 0;
}

kiln_instance *kiln_create(const kiln_model_desc *d) {
    if (check_desc(d) != 0) return NULL;
    kiln_instance *inst = calloc(1, sizeof *inst);
    int nio = d->num_inputs + d->num_outputs;
    if (!inst) goto oom;
    inst->d = d;
    inst->id = atomic_fetch_add(&next_instance_id, 1);
    inst->state = aligned_zalloc(d->state_bytes);
    inst->in_row_bytes = calloc((size_t)d->num_inputs + 1, sizeof(int64_t));
    inst->out_row_bytes = calloc((size_t)d->num_outputs + 1, sizeof(int64_t));
    inst->io_ptrs = calloc((size_t)nio + 1, sizeof(void *));
    inst->out_ptrs = calloc((size_t)d->num_outputs + 1, sizeof(void *));
    if (!inst->state || !inst->in_row_bytes || !inst->out_row_bytes || !inst->io_ptrs || !inst->out_ptrs)
        goto oom;
    /* Optimizer slots (and trailing zero weights) are not stored: the state was zeroed at allocation. */
    if (d->init_state_bytes > 0) memcpy(inst->state, d->init_state, (size_t)d->init_state_bytes);
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    inst->threads = default_threads();
    pool_grow(inst->threads - 1);

    inst->reserved_rows = default_capacity(predict_plan(d));
    if (grow_arena(inst, &inst->predict_arena, &inst->predict_size, predict_plan(d), inst->reserved_rows, 1, "predict") != 0)
        goto oom;
    if (d->train || d->evaluate) {
        if (grow_arena(inst, &inst->train_arena, &inst->train_size, train_plan(d), default_capacity(train_plan(d)), 1,
                       "training") != 0)
            goto oom;
    }
    return inst;
oom:
    if (inst && inst->error[0]) fail(NULL, "%s", inst->error);
    else fail(NULL, "out of memory creating an instance of model '%s'.", d->name ? d->name : "(unnamed)");
    kiln_destroy(inst);
    return NULL;
}

void kiln_destroy(kiln_instance *inst) {
    if (!inst) return;
    aligned_free(inst->state);
    aligned_free(inst->predict_arena);
    aligned_free(inst->train_arena);
    free(inst->in_row_bytes);
    free(inst->out_row_bytes);
    free(inst->io_ptrs);
    free(inst->out_ptrs);
    free(inst);
}

int kiln_set_num_threads(kiln_instance *inst, int threads) {
    if (!inst) return fail(NULL, "kiln_set_num_threads was given a NULL model instance.");
    if (enter(inst, "set_num_threads") != 0) return -1;
    if (threads < 0 || threads > KILN_MAX_THREADS)
        return leave(inst, fail(inst, "the number of threads must be 1 to %d, or 0 for the default (got %d).",
                                KILN_MAX_THREADS, threads));
    inst->threads = threads == 0 ? default_threads() : threads;
    pool_grow(inst->threads - 1);
    return leave(inst, 0);
}

static int reserve_locked(kiln_instance *inst, int64_t rows) {
    if (rows < 0) return fail(inst, "cannot reserve a negative number of rows (%lld).", (long long)rows);
    const kiln_model_desc *d = inst->d;
    if (grow_arena(inst, &inst->predict_arena, &inst->predict_size, predict_plan(d), rows, 1, "predict") != 0)
        return -1;
    if ((d->train || d->evaluate) && grow_arena(inst, &inst->train_arena, &inst->train_size, train_plan(d), rows, 1,
                                                "training") != 0)
        return -1;
    if (rows > inst->reserved_rows) inst->reserved_rows = rows;
    return 0;
}

int kiln_reserve(kiln_instance *inst, int64_t rows) {
    if (!inst) return fail(NULL, "kiln_reserve was given a NULL model instance.");
    if (enter(inst, "reserve") != 0) return -1;
    return leave(inst, reserve_locked(inst, rows));
}

/* ------------------------------------------------------------------ calls */

static int check_pointers(kiln_instance *inst, const void *const *p, int count, int64_t n,
                          const char *what, const kiln_tensor_desc *descs) {
    if (count == 0) return 0;
    if (!p) return fail(inst, "the array of %s pointers is NULL (model '%s' has %d).", what, model_name(inst), count);
    if (n == 0) return 0;
    for (int i = 0; i < count; i++)
        if (!p[i])
            return fail(inst, "%s %d ('%s') of model '%s' is a NULL pointer.", what, i,
                        descs[i].name ? descs[i].name : "(unnamed)", model_name(inst));
    return 0;
}

int kiln_reset_states(kiln_instance *inst) {
    if (!inst) return fail(NULL, "kiln_reset_states was given a NULL model instance.");
    if (enter(inst, "reset_states") != 0) return -1;
    const kiln_model_desc *d = inst->d;
    for (int32_t i = 0; i < d->num_carried; i++)
        memset((char *)inst->state + d->carried[2 * i], 0, (size_t)d->carried[2 * i + 1]);
    return leave(inst, 0);
}

/* A model with stateful layers runs batches of its fixed size only (their carried state has
 * that many rows). */
static int check_fixed_batch(kiln_instance *inst, int64_t n, const char *fname) {
    const kiln_model_desc *d = inst->d;
    if (d->num_carried > 0 && d->fixed_batch > 0 && n != d->fixed_batch)
        return fail(inst, "%s: model '%s' has stateful layers for batches of exactly %lld rows (its Input's batch_shape); got %lld.",
                    fname, model_name(inst), (long long)d->fixed_batch, (long long)n);
    return 0;
}

/* With check_inputs on: the first NaN or infinite value among the f32 tensors p[0..count)
 * of n rows (of `steps` steps) fails the call, naming the tensor and the row. */
static int check_finite(kiln_instance *inst, const void *const *p, int count, const kiln_tensor_desc *descs, int64_t n,
                        int64_t steps, const char *what) {
    for (int i = 0; i < count; i++) {
        if (descs[i].dtype != KILN_F32) continue;
        int64_t rb = row_bytes(&descs[i], steps);
        if (rb < 0) continue;   /* refused by set_row_bytes / the arena sizes */
        int64_t per_row = rb / 4;
        const unsigned char *v = p[i];
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k < per_row; k++) {
                uint32_t u;
                memcpy(&u, v + 4 * (r * per_row + k), 4);
                if ((u & 0x7F800000u) != 0x7F800000u) continue;
                const char *kind = (u & 0x007FFFFFu) ? "NaN" : (u >> 31) ? "-inf" : "inf";
                return fail(inst, "%s '%s' row %lld holds %s (element %lld of the row); model '%s' checks its inputs "
                            "(set_check_inputs).", what, descs[i].name ? descs[i].name : "(unnamed)", (long long)r, kind,
                            (long long)k, model_name(inst));
            }
    }
    return 0;
}

static int predict_locked(kiln_instance *inst, const void *const *inputs, void *const *outputs, int64_t n,
                          int64_t steps) {
    const kiln_model_desc *d = inst->d;
    if (n < 0) return fail(inst, "the number of rows must not be negative (got %lld).", (long long)n);
    if (check_fixed_batch(inst, n, "predict") != 0) return -1;
    if (check_steps(inst, &steps, "predict") != 0) return -1;
    if (check_pointers(inst, inputs, d->num_inputs, n, "input", d->inputs) != 0) return -1;
    if (check_pointers(inst, (const void *const *)outputs, d->num_outputs, n, "output", d->outputs) != 0)
        return -1;
    if (n == 0) return 0;
    tls_threads = inst->threads;
    if (set_row_bytes(inst, steps, d->outputs) != 0) return -1;
    if (inst->check_inputs && check_finite(inst, inputs, d->num_inputs, d->inputs, n, steps, "input") != 0)
        return -1;
    /* Rows run in chunks of what the arena holds at these steps; a sequence longer than
     * the arena was planned for grows it once to the reserved rows. */
    int64_t chunk = arena_rows(predict_plan(d), inst->predict_size, steps);
    /* Carried state covers the whole batch: one chunk. */
    if (chunk < 1 || (chunk < inst->reserved_rows && chunk < n) || (d->num_carried > 0 && chunk < n)) {
        int64_t want = n < inst->reserved_rows || d->num_carried > 0 ? n : inst->reserved_rows;
        if (grow_arena(inst, &inst->predict_arena, &inst->predict_size, predict_plan(d), want, steps, "predict") != 0)
            return -1;
        chunk = arena_rows(predict_plan(d), inst->predict_size, steps);
    }
    for (int64_t done = 0; done < n;) {
        int64_t rows = n - done < chunk ? n - done : chunk;
        for (int i = 0; i < d->num_inputs; i++)
            inst->io_ptrs[i] = (const char *)inputs[i] + done * inst->in_row_bytes[i];
        for (int i = 0; i < d->num_outputs; i++)
            inst->out_ptrs[i] = (char *)outputs[i] + done * inst->out_row_bytes[i];
        d->predict(inst->predict_arena, inst->state, inst->io_ptrs, inst->out_ptrs, rows, steps);
        done += rows;
    }
    return 0;
}

int kiln_predict_steps(kiln_instance *inst, const void *const *inputs, void *const *outputs, int64_t n,
                       int64_t steps) {
    if (!inst) return fail(NULL, "kiln_predict was given a NULL model instance.");
    if (enter(inst, "predict") != 0) return -1;
    return leave(inst, predict_locked(inst, inputs, outputs, n, steps));
}

int kiln_predict(kiln_instance *inst, const void *const *inputs, void *const *outputs, int64_t n) {
    return kiln_predict_steps(inst, inputs, outputs, n, 0);
}

/* Shared by train_step and evaluate. */
static int step_locked(kiln_instance *inst, const void *const *x, const void *const *y, int64_t n, int64_t steps,
                       float *loss, int update, const char *fname) {
    const kiln_model_desc *d = inst->d;
    kiln_train_fn fn = update ? d->train : d->evaluate;
    if (!fn) return fail(inst, "this library was compiled without a training step (model '%s').", model_name(inst));
    if (n < 1) return fail(inst, "a training batch needs at least 1 row (got %lld).", (long long)n);
    if (check_fixed_batch(inst, n, fname) != 0) return -1;
    if (check_steps(inst, &steps, fname) != 0) return -1;
    if (check_pointers(inst, x, d->num_inputs, n, "input", d->inputs) != 0) return -1;
    if (check_pointers(inst, y, d->num_outputs, n, "target", d->targets) != 0) return -1;
    if (inst->check_inputs && (check_finite(inst, x, d->num_inputs, d->inputs, n, steps, "input") != 0 ||
                               check_finite(inst, y, d->num_outputs, d->targets, n, steps, "target") != 0))
        return -1;
    if (grow_arena(inst, &inst->train_arena, &inst->train_size, train_plan(d), n, steps, "training") != 0)
        return -1;
    for (int i = 0; i < d->num_inputs; i++) inst->io_ptrs[i] = x[i];
    for (int i = 0; i < d->num_outputs; i++) inst->io_ptrs[d->num_inputs + i] = y[i];
    kiln_step_info info;
    memset(&info, 0, sizeof info);
    info.iteration = inst->iteration;
    info.seed = kiln_step_seed(inst->seed, inst->iteration);
    info.metrics = inst->metrics;
    info.steps = steps;
    tls_threads = inst->threads;
    float l = fn(inst->train_arena, inst->state, inst->io_ptrs, n, &info);
    if (update) inst->iteration++;
    if (loss) *loss = l;
    return 0;
}

static int run_step(kiln_instance *inst, const void *const *x, const void *const *y, int64_t n, int64_t steps,
                    float *loss, int update, const char *fname) {
    if (!inst) return fail(NULL, "%s was given a NULL model instance.", fname);
    if (enter(inst, fname) != 0) return -1;
    return leave(inst, step_locked(inst, x, y, n, steps, loss, update, fname));
}

int kiln_last_metrics(const kiln_instance *inst, float *dst, int count) {
    if (!inst) return fail(NULL, "kiln_last_metrics was given a NULL model instance.");
    kiln_instance *in = (kiln_instance *)inst;
    if (enter(in, "last_metrics") != 0) return -1;
    if (count != inst->d->num_metrics || (count > 0 && !dst))
        return leave(in, fail(in, "model '%s' reports %d metrics; %d were asked for.", model_name(in),
                              inst->d->num_metrics, count));
    for (int i = 0; i < count; i++) dst[i] = inst->metrics[i];
    return leave(in, 0);
}

int kiln_train_step(kiln_instance *inst, const void *const *x, const void *const *y, int64_t n, float *loss) {
    return run_step(inst, x, y, n, 0, loss, 1, "kiln_train_step");
}

int kiln_evaluate(kiln_instance *inst, const void *const *x, const void *const *y, int64_t n, float *loss) {
    return run_step(inst, x, y, n, 0, loss, 0, "kiln_evaluate");
}

int kiln_train_step_steps(kiln_instance *inst, const void *const *x, const void *const *y, int64_t n, int64_t steps,
                          float *loss) {
    return run_step(inst, x, y, n, steps, loss, 1, "kiln_train_step");
}

int kiln_evaluate_steps(kiln_instance *inst, const void *const *x, const void *const *y, int64_t n, int64_t steps,
                        float *loss) {
    return run_step(inst, x, y, n, steps, loss, 0, "kiln_evaluate");
}

/* ---------------------------------------------------------------- weights */

int64_t kiln_num_weights(const kiln_instance *inst) {
    if (!inst) {
        fail(NULL, "kiln_num_weights was given a NULL model instance.");
        return -1;
    }
    return inst->d->num_weights;
}

static const kiln_weight_desc *weight_at(kiln_instance *inst, int index, int64_t count, const void *buf,
                                         const char *fname) {
    const kiln_model_desc *d = inst->d;
    if (index < 0 || index >= d->num_weights) {
        fail(inst, "weight index %d is out of range; model '%s' has %d weights.", index, model_name(inst),
             d->num_weights);
        return NULL;
    }
    const kiln_weight_desc *w = &d->weights[index];
    const char *wn = w->name ? w->name : "(unnamed)";
    if (count != w->count) {
        fail(inst, "weight %d ('%s') has %lld elements, but %s was given %lld.", index, wn, (long long)w->count,
             fname, (long long)count);
        return NULL;
    }
    if (!buf && count > 0) {
        fail(inst, "%s was given a NULL buffer for weight %d ('%s').", fname, index, wn);
        return NULL;
    }
    return w;
}

int kiln_get_weight(kiln_instance *inst, int index, float *dst, int64_t count) {
    if (!inst) return fail(NULL, "kiln_get_weight was given a NULL model instance.");
    if (enter(inst, "get_weight") != 0) return -1;
    const kiln_weight_desc *w = weight_at(inst, index, count, dst, "get_weight");
    if (!w) return leave(inst, -1);
    if (count > 0) memcpy(dst, (const char *)inst->state + w->offset, (size_t)count * 4);
    return leave(inst, 0);
}

int kiln_set_weight(kiln_instance *inst, int index, const float *src, int64_t count) {
    if (!inst) return fail(NULL, "kiln_set_weight was given a NULL model instance.");
    if (enter(inst, "set_weight") != 0) return -1;
    const kiln_weight_desc *w = weight_at(inst, index, count, src, "set_weight");
    if (!w) return leave(inst, -1);
    if (count > 0) memmove((char *)inst->state + w->offset, src, (size_t)count * 4);
    return leave(inst, 0);
}

/* ------------------------------------------------------------ state files */

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Makes the rename durable; failures here are not reported (the file is
 * already complete under its final name). */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* Temporary files. A save writes `path.tmp.<pid>.<n>` (n counts the saves of the
 * process, so that two threads saving to one path never share a file), holding an
 * flock on it until it is renamed over `path`. A save that is cut off (the process
 * killed) leaves that file; the next save to the same path removes every
 * `path.tmp.<pid>[.<n>]` whose process no longer exists and that nobody holds
 * locked (the lock guards a writer the pid test cannot see: another pid namespace
 * sharing the folder). Files of this process and of live processes are left. */
static _Atomic uint64_t save_counter;

static void remove_stale_temps(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = !slash ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
    if (!dir) return;
    DIR *dp = opendir(dir);
    free(dir);
    if (!dp) return;
    int dfd = dirfd(dp);
    size_t blen = strlen(base);
    pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, blen) != 0 || strncmp(nm + blen, ".tmp.", 5) != 0) continue;
        const char *q = nm + blen + 5;
        long long pid = 0;
        int digits = 0;
        for (; *q >= '0' && *q <= '9' && digits < 10; q++, digits++) pid = pid * 10 + (*q - '0');
        if (digits == 0 || pid <= 0 || pid > INT_MAX || (pid_t)pid == self) continue;
        if (*q == '.') {
            const char *r = ++q;
            while (*q >= '0' && *q <= '9') q++;
            if (q == r) continue;
        }
        if (*q) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive, or not ours to ask */
        int fd = openat(dfd, nm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) continue;
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0) unlinkat(dfd, nm, 0);
        close(fd);
    }
    closedir(dp);
}

static int save_locked(kiln_instance *inst, const char *path) {
    if (!path || !*path) return fail(inst, "kiln_save_weights needs a file path.");
    const kiln_model_desc *d = inst->d;
    const char *name = d->name ? d->name : "";
    size_t name_len = strlen(name);
    size_t head_len = STATE_HEADER_BYTES + name_len;
    unsigned char *head = malloc(head_len);
    size_t tmp_len = strlen(path) + 64;
    char *tmp = malloc(tmp_len);
    if (!head || !tmp) {
        free(head);
        free(tmp);
        return fail(inst, "out of memory saving weights to '%s'.", path);
    }
    memcpy(head, STATE_MAGIC, 8);
    put32(head + 8, STATE_VERSION);
    put32(head + 12, (uint32_t)name_len);
    put64(head + 16, (uint64_t)d->state_bytes);
    put64(head + 24, (uint64_t)inst->iteration);
    put64(head + 32, inst->seed);
    put64(head + 40, layout_hash(d));
    memcpy(head + STATE_HEADER_BYTES, name, name_len);
    uint64_t sum = checksum(checksum(CHECKSUM_START, head, head_len), (const unsigned char *)inst->state,
                            (size_t)d->state_bytes);
    unsigned char tail[8];
    put64(tail, sum);

    remove_stale_temps(path);
    int fd = -1;
    for (int attempt = 0; attempt < 64 && fd < 0; attempt++) {
        snprintf(tmp, tmp_len, "%s.tmp.%ld.%llu", path, (long)getpid(),
                 (unsigned long long)atomic_fetch_add(&save_counter, 1));
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd >= 0) flock(fd, LOCK_EX);   /* held until close; a folder without locks works without */
    if (fd < 0) {
        int e = errno;
        free(head);
        free(tmp);
        return fail(inst, "cannot write weights to '%s': %s.", path, strerror(e));
    }
    int ok = write_all(fd, head, head_len) == 0 && write_all(fd, inst->state, (size_t)d->state_bytes) == 0 &&
             write_all(fd, tail, 8) == 0 && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        unlink(tmp);
        free(head);
        free(tmp);
        return fail(inst, "cannot write weights to '%s': %s.", path, strerror(e));
    }
    sync_parent_dir(path);
    free(head);
    free(tmp);
    return 0;
}

int kiln_save_weights(kiln_instance *inst, const char *path) {
    if (!inst) return fail(NULL, "kiln_save_weights was given a NULL model instance.");
    if (enter(inst, "save_weights") != 0) return -1;
    return leave(inst, save_locked(inst, path));
}

static int load_locked(kiln_instance *inst, const char *path) {
    if (!path || !*path) return fail(inst, "kiln_load_weights needs a file path.");
    const kiln_model_desc *d = inst->d;
    const char *name = d->name ? d->name : "";
    size_t name_len = strlen(name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(inst, "cannot open weights file '%s': %s.", path, strerror(errno));
    unsigned char head[STATE_HEADER_BYTES];
    struct stat st;
    int rc = -1;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0) {
        fail(inst, "cannot read weights file '%s': %s.", path, strerror(errno));
        goto done;
    }
    if (st.st_size < STATE_HEADER_BYTES + 8 || read_all(fd, head, sizeof head) != 0) {
        fail(inst, "'%s' is not a Kiln weights file: it is too short (%lld bytes).", path, (long long)st.st_size);
        goto done;
    }
    if (memcmp(head, STATE_MAGIC, 8) != 0) {
        fail(inst, "'%s' is not a Kiln weights file (its first bytes are not \"" STATE_MAGIC "\").", path);
        goto done;
    }
    uint32_t version = get32(head + 8);
    if (version != STATE_VERSION) {
        fail(inst, "'%s' has weights file format %u (or another byte order); this runtime reads format %u.", path,
             version, STATE_VERSION);
        goto done;
    }
    uint32_t file_name_len = get32(head + 12);
    int64_t file_state = (int64_t)get64(head + 16);
    if (file_name_len > 4096 || (off_t)(STATE_HEADER_BYTES + file_name_len) > st.st_size) {
        fail(inst, "'%s' is corrupted (its model name length is %u).", path, file_name_len);
        goto done;
    }
    char file_name[4097];
    if (read_all(fd, file_name, file_name_len) != 0) {
        fail(inst, "cannot read weights file '%s': %s.", path, errno ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    file_name[file_name_len] = '\0';
    if (file_name_len != name_len || memcmp(file_name, name, name_len) != 0) {
        fail(inst, "'%s' holds the state of model '%s', not of model '%s'.", path, file_name, name);
        goto done;
    }
    if (file_state != d->state_bytes) {
        fail(inst, "'%s' holds %lld bytes of state, but model '%s' has %lld.", path, (long long)file_state, name,
             (long long)d->state_bytes);
        goto done;
    }
    if (get64(head + 40) != layout_hash(d)) {
        fail(inst, "'%s' was saved by a model '%s' whose weights are laid out differently.", path, name);
        goto done;
    }
    int64_t expected = STATE_HEADER_BYTES + (int64_t)name_len + d->state_bytes + 8;
    if ((int64_t)st.st_size != expected) {
        fail(inst, "'%s' is %s (%lld bytes, expected %lld).", path,
             (int64_t)st.st_size < expected ? "truncated" : "corrupted: it has trailing bytes", (long long)st.st_size,
             (long long)expected);
        goto done;
    }
    buf = malloc((size_t)d->state_bytes + 8);
    if (!buf) {
        fail(inst, "out of memory loading weights from '%s'.", path);
        goto done;
    }
    if (read_all(fd, buf, (size_t)d->state_bytes + 8) != 0) {
        fail(inst, "cannot read weights file '%s': %s.", path, errno ? strerror(errno) : "unexpected end of file");
        goto done;
    }
    /* Same words as the writer's one pass over header and name: the header
     * is a whole number of 8-byte words. */
    uint64_t sum = checksum(CHECKSUM_START, head, sizeof head);
    sum = checksum(sum, (const unsigned char *)file_name, name_len);
    sum = checksum(sum, buf, (size_t)d->state_bytes);
    if (sum != get64(buf + d->state_bytes)) {
        fail(inst, "'%s' is corrupted (its checksum does not match its contents).", path);
        goto done;
    }
    memcpy(inst->state, buf, (size_t)d->state_bytes);
    inst->iteration = (int64_t)get64(head + 24);
    inst->seed = get64(head + 32);
    rc = 0;
done:
    free(buf);
    close(fd);
    return rc;
}

int kiln_load_weights(kiln_instance *inst, const char *path) {
    if (!inst) return fail(NULL, "kiln_load_weights was given a NULL model instance.");
    if (enter(inst, "load_weights") != 0) return -1;
    return leave(inst, load_locked(inst, path));
}

/* ------------------------------------------------------------------ misc */

void kiln_set_seed(kiln_instance *inst, uint64_t seed) {
    if (!inst) {
        fail(NULL, "kiln_set_seed was given a NULL model instance.");
        return;
    }
    if (enter(inst, "set_seed") != 0) return;
    inst->seed = seed;
    leave(inst, 0);
}

int64_t kiln_iterations(const kiln_instance *inst) {
    if (!inst) {
        fail(NULL, "kiln_iterations was given a NULL model instance.");
        return -1;
    }
    return inst->iteration;
}

const char *kiln_last_error(const kiln_instance *inst) {
    if (inst && tls_busy_id == inst->id) return tls_busy_error;
    return inst ? inst->error : tls_error;
}

int kiln_set_check_inputs(kiln_instance *inst, int on) {
    if (!inst) return fail(NULL, "kiln_set_check_inputs was given a NULL model instance.");
    if (enter(inst, "set_check_inputs") != 0) return -1;
    inst->check_inputs = on != 0;
    return leave(inst, 0);
}
