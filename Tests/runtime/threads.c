/* threads.c: a compiled Kiln library used from many threads, for running under
 * ThreadSanitizer (the runtime and the glue built with -fsanitize=thread, see
 * tools/sanitize.sh).
 *
 * 1. Separate instances: THREADS threads, each with PER_THREAD instances of its
 *    own, interleave predict calls and train steps over them; every result
 *    (predictions, losses, final weights) must be bit-identical to the same
 *    calls run one after another on one thread. Half the instances use 2
 *    threads of the library's pool (kiln_parallel_for), so the pool is shared
 *    and contended.
 * 2. One instance, two threads: thread A predicts (and checks every result
 *    against the reference) while thread B keeps calling predict and
 *    get_weight on the same instance; each call of either thread either runs
 *    while the other is outside a call or is refused with "busy" in last_error
 *    on its own thread (A then retries), and A's results never change.
 *
 *   ./threads [ROUNDS [PER_THREAD]]   (default 3 rounds, 8 instances per thread)
 * prints "threads OK" and exits 0 when all holds.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kiln_test_util.h"

#define THREADS 8
#define MAX_PER_THREAD 8
#define INSTANCES (THREADS * MAX_PER_THREAD)
#define ROWS 16

static const kiln_api *api;
static const kiln_model_desc *d;
static int rounds = 3, per_thread = MAX_PER_THREAD;
static int64_t steps;

typedef struct {
    kiln_instance *m;
    void **x, **y, **out;
    uint64_t *results;   /* per round: the predictions' hash, then the loss bits */
    uint64_t weights;
    int failed;
} slot;

static void setup(slot *s, int k) {
    s->m = api->create(d);
    if (!s->m) {
        fprintf(stderr, "create: %s\n", api->last_error(NULL));
        exit(1);
    }
    api->set_seed(s->m, (uint64_t)k + 1);
    api->set_num_threads(s->m, k % 2 ? 2 : 1);
    s->x = make_tensors(d->inputs, d->num_inputs, ROWS, steps, 100 + (uint64_t)k, 0);
    s->y = d->train ? make_tensors(d->targets, d->num_outputs, ROWS, steps, 200 + (uint64_t)k, 1) : NULL;
    s->out = make_outputs(d, ROWS, steps);
    s->results = calloc((size_t)rounds * 2, sizeof(uint64_t));
}

static void teardown(slot *s) {
    api->destroy(s->m);
    free_tensors(s->x, d->num_inputs);
    free_tensors(s->y, d->num_outputs);
    free_tensors(s->out, d->num_outputs);
    free(s->results);
}

/* Round r of one instance: a prediction, then a train step. */
static void run_round(slot *s, int r) {
    if (api->predict_steps(s->m, (const void *const *)s->x, s->out, ROWS, steps) != 0) {
        fprintf(stderr, "predict: %s\n", api->last_error(s->m));
        s->failed = 1;
    }
    s->results[2 * r] = hash_outputs(d, s->out, ROWS, steps);
    float loss = 0;
    if (d->train && api->train_step_steps(s->m, (const void *const *)s->x, (const void *const *)s->y, ROWS, steps,
                                          &loss) != 0) {
        fprintf(stderr, "train: %s\n", api->last_error(s->m));
        s->failed = 1;
    }
    uint32_t bits;
    memcpy(&bits, &loss, 4);
    s->results[2 * r + 1] = bits;
}

static slot parallel_slots[INSTANCES];

static void *worker(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < per_thread; k++) run_round(&parallel_slots[t * per_thread + k], r);
    return NULL;
}

/* ---- one instance, two threads */

static kiln_instance *shared;
static void **sx, **sout_a, **sout_b;
static uint64_t expected_hash;
static atomic_int a_done;
static int a_mismatches, a_errors, a_busy, b_ok, b_busy, b_other;
static char b_message[512];

static void pause_briefly(void) {
    struct timespec t = {0, 20000};
    nanosleep(&t, NULL);
}

static void *caller_a(void *arg) {
    (void)arg;
    for (int i = 0; i < 40 * rounds;) {
        if (api->predict_steps(shared, (const void *const *)sx, sout_a, ROWS, steps) != 0) {
            if (strstr(api->last_error(shared), "is busy")) {   /* B is inside: try again */
                a_busy++;
                pause_briefly();
            }
            else {
                a_errors++;
                i++;
            }
            continue;
        }
        if (hash_outputs(d, sout_a, ROWS, steps) != expected_hash) a_mismatches++;
        i++;
    }
    atomic_store(&a_done, 1);
    return NULL;
}

static void *caller_b(void *arg) {
    (void)arg;
    float w[64];
    int64_t wc = d->num_weights > 0 && d->weights[0].count <= 64 ? d->weights[0].count : 0;
    for (unsigned i = 0; !atomic_load(&a_done); i++) {
        int rc = i % 2 == 1 && wc > 0 ? api->get_weight(shared, 0, w, wc)
                                       : api->predict_steps(shared, (const void *const *)sx, sout_b, ROWS, steps);
        if (rc == 0) {   /* (the instance's own error text belongs to whichever call runs: not read here) */
            b_ok++;
            pause_briefly();
            continue;
        }
        const char *e = api->last_error(shared);
        if (strstr(e, "is busy")) {
            b_busy++;
            pause_briefly();
            if (!b_message[0]) snprintf(b_message, sizeof b_message, "%s", e);
        } else {
            b_other++;
            fprintf(stderr, "B: unexpected error: %s\n", e);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atoi(argv[1]);
    if (argc > 2) per_thread = atoi(argv[2]);
    if (rounds < 1) rounds = 1;
    if (per_thread < 1 || per_thread > MAX_PER_THREAD) per_thread = MAX_PER_THREAD;
    int instances = THREADS * per_thread;
    api = kiln_entry();
    d = api->desc;
    steps = test_steps(d);

    /* The reference: every instance's rounds, one instance after another, on this thread. */
    static slot ref[INSTANCES];
    for (int k = 0; k < instances; k++) {
        setup(&ref[k], k);
        for (int r = 0; r < rounds; r++) run_round(&ref[k], r);
        ref[k].weights = hash_weights(api, ref[k].m);
        api->destroy(ref[k].m);
        ref[k].m = NULL;
    }
    for (int k = 0; k < instances; k++) setup(&parallel_slots[k], k);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    int differ = 0;
    for (int k = 0; k < instances; k++) {
        slot *p = &parallel_slots[k];
        p->weights = hash_weights(api, p->m);
        CHECK(!p->failed && !ref[k].failed, "instance %d: a call failed", k);
        if (memcmp(p->results, ref[k].results, (size_t)rounds * 2 * sizeof(uint64_t)) != 0 || p->weights != ref[k].weights)
            differ++;
    }
    CHECK(differ == 0, "%d of %d instances differ from the sequential run", differ, instances);
    printf("separate instances: %d threads x %d instances x %d rounds (predict + train step), %d differ from one after another\n",
           THREADS, per_thread, rounds, differ);

    /* One instance, two threads. */
    shared = api->create(d);
    api->set_seed(shared, 5);
    api->set_num_threads(shared, 2);
    sx = make_tensors(d->inputs, d->num_inputs, ROWS, steps, 7, 0);
    sout_a = make_outputs(d, ROWS, steps);
    sout_b = make_outputs(d, ROWS, steps);
    CHECK(api->predict_steps(shared, (const void *const *)sx, sout_a, ROWS, steps) == 0, "predict");
    expected_hash = hash_outputs(d, sout_a, ROWS, steps);
    uint64_t weights_before = hash_weights(api, shared);
    pthread_t a, b;
    pthread_create(&b, NULL, caller_b, NULL);
    pthread_create(&a, NULL, caller_a, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(a_errors == 0 && a_mismatches == 0, "thread A: %d errors, %d wrong results", a_errors, a_mismatches);
    CHECK(b_busy > 0 && a_busy + b_busy > 0, "thread B was never refused (%d calls ran)", b_ok);
    CHECK(b_other == 0, "thread B: %d unexpected errors", b_other);
    CHECK(hash_weights(api, shared) == weights_before, "the shared instance's weights changed");
    CHECK(api->predict_steps(shared, (const void *const *)sx, sout_a, ROWS, steps) == 0 &&
          hash_outputs(d, sout_a, ROWS, steps) == expected_hash, "the shared instance still predicts the same");
    printf("one instance, two threads: A %d calls all right (%d refused and retried); B %d ran, %d refused (\"%s\")\n",
           40 * rounds, a_busy, b_ok, b_busy, b_message);

    api->destroy(shared);
    free_tensors(sx, d->num_inputs);
    free_tensors(sout_a, d->num_outputs);
    free_tensors(sout_b, d->num_outputs);
    for (int k = 0; k < instances; k++) {
        teardown(&ref[k]);
        teardown(&parallel_slots[k]);
    }
    if (test_failures) {
        fprintf(stderr, "threads: %d check(s) failed\n", test_failures);
        return 1;
    }
    printf("threads OK (model %s)\n", d->name);
    return 0;
}
