/* kiln_test_util.h: helpers of the runtime's C tests (the .c files of Tests/runtime), which
 * drive any compiled library through its name-free table (kiln_entry(), see
 * Runtime/kiln_abi.h): inputs and targets made from a seed, hashes of results,
 * and CHECK, which counts failures and prints them. tools/sanitize.sh builds
 * and runs the tests. */
#ifndef KILN_TEST_UTIL_H
#define KILN_TEST_UTIL_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln_abi.h"

extern const kiln_api *kiln_entry(void);

static int test_failures;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            test_failures++;                                              \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
        }                                                                 \
    } while (0)

/* The time steps the tests use for a model with a free time axis (1 otherwise). */
#define TEST_STEPS 4

static inline int64_t test_steps(const kiln_model_desc *d) { return d->free_steps ? TEST_STEPS : 1; }

/* Elements in one row of t (dims after the first; a free dim counts `steps`). */
static inline int64_t row_elems(const kiln_tensor_desc *t, int64_t steps) {
    int64_t e = 1;
    for (int k = 1; k < t->rank; k++) e *= t->shape[k] < 0 ? steps : t->shape[k];
    return e;
}

static inline uint64_t rng_next(uint64_t *s) {   /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n rows of each of `count` tensors: f32 uniform in [0, 1), one-hot rows for
 * f32 targets (`onehot`), i32 zeros (valid token ids and class labels of any
 * model). Free with free_tensors. */
static inline void **make_tensors(const kiln_tensor_desc *t, int count, int64_t n, int64_t steps, uint64_t seed, int onehot) {
    void **p = calloc((size_t)count + 1, sizeof(void *));
    for (int i = 0; i < count; i++) {
        int64_t e = row_elems(&t[i], steps);
        p[i] = calloc((size_t)(n * e), 4);
        if (t[i].dtype != KILN_F32) continue;
        float *f = p[i];
        int64_t last = t[i].shape[t[i].rank - 1] < 0 ? steps : t[i].shape[t[i].rank - 1];
        for (int64_t j = 0; j < n * e; j++) {
            uint64_t r = rng_next(&seed);
            if (onehot && last > 0) f[j] = (r % (uint64_t)last) == 0 ? 1.0f : 0.0f;
            else f[j] = (float)(r >> 40) / (float)(1 << 24);
        }
    }
    return p;
}

static inline void free_tensors(void **p, int count) {
    if (!p) return;
    for (int i = 0; i < count; i++) free(p[i]);
    free(p);
}

static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {   /* FNV-1a */
    const unsigned char *b = p;
    if (h == 0) h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

/* A hash of every weight of inst (-1 when one cannot be read). */
static inline uint64_t hash_weights(const kiln_api *api, kiln_instance *inst) {
    const kiln_model_desc *d = api->desc;
    uint64_t h = 0;
    for (int i = 0; i < d->num_weights; i++) {
        int64_t c = d->weights[i].count;
        float *w = malloc((size_t)c * 4);
        if (api->get_weight(inst, i, w, c) != 0) {
            free(w);
            return (uint64_t)-1;
        }
        h = hash_bytes(h, w, (size_t)c * 4);
        free(w);
    }
    return h;
}

/* Output buffers for n rows. */
static inline void **make_outputs(const kiln_model_desc *d, int64_t n, int64_t steps) {
    void **p = calloc((size_t)d->num_outputs + 1, sizeof(void *));
    for (int i = 0; i < d->num_outputs; i++) p[i] = calloc((size_t)(n * row_elems(&d->outputs[i], steps)), 4);
    return p;
}

static inline uint64_t hash_outputs(const kiln_model_desc *d, void **out, int64_t n, int64_t steps) {
    uint64_t h = 0;
    for (int i = 0; i < d->num_outputs; i++) h = hash_bytes(h, out[i], (size_t)(n * row_elems(&d->outputs[i], steps)) * 4);
    return h;
}

#endif
