/* Variable-length sequences with masking: the same model with and without its
 * Masking layer, trained on the same padded batches from C. See
 * samples/masking/README.md.
 *
 *   masking TRAIN TEST EPOCHS
 *
 * The data (made here, seeded): sequences of 6 to 24 values drawn uniformly from
 * [-1, 1] (never exactly 0), pre-padded with zeros to STEPS = 24, as Keras'
 * pad_sequences does by default. The target at position p is the mean of the
 * four inputs at p-3..p of the padded array (padding counts as 0), defined from
 * p = 3 on: Cropping1D((3, 0)) drops the first three outputs, which have no
 * full window. Padded positions have the target 0.
 *
 * Both libraries (masking: Masking(0.0) -> LSTM(128) -> LSTM(64) -> LSTM(1) ->
 * Cropping1D((3, 0)); nomask: the same without Masking, same initial weights)
 * train EPOCHS epochs on the same batches of 32 (mean absolute error, Adam).
 * Then, on TEST fresh sequences, each model's loss as Keras computes it
 * (masking_evaluate: the mean over all 21 kept positions, padded ones included,
 * because Cropping1D passes no mask on) and, from its predictions, the error
 * on real positions only and on padded positions only.
 *
 * Exits 1 unless the masked model's training loss dropped by 30% or more from the
 * first epoch to the last, its outputs at every padded position are exactly 0 (so
 * padding adds nothing to its loss), its loss equals its real-position error times
 * the share of real positions, and the model without the mask has a nonzero error
 * at padded positions.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "masking.h"
#include "nomask.h"

enum { STEPS = 24, CROP = 3, KEPT = STEPS - CROP, MIN_LEN = 6, BATCH = 32 };

static uint64_t rng_state = 0x4D41534BULL;   /* "MASK" */
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double uniform(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }

/* n rows: x (n, STEPS, 1) pre-padded, y (n, KEPT, 1), real (n, KEPT): 1 where position CROP + k is a real step. */
static void make_data(long n, float *x, float *y, unsigned char *real) {
    for (long i = 0; i < n; i++) {
        int len = MIN_LEN + (int)(uniform() * (STEPS - MIN_LEN + 1));
        float *xi = x + i * STEPS;
        for (int p = 0; p < STEPS; p++) {
            float v = 0;
            if (p >= STEPS - len) {
                do v = (float)(2.0 * uniform() - 1.0); while (v == 0.0f);
            }
            xi[p] = v;
        }
        for (int k = 0; k < KEPT; k++) {
            int p = CROP + k;
            y[i * KEPT + k] = (xi[p - 3] + xi[p - 2] + xi[p - 1] + xi[p]) / 4.0f;
            real[i * KEPT + k] = p >= STEPS - len;
        }
    }
}

/* One model behind function pointers (masking_* and nomask_*, wrapped type-correctly). */
typedef struct {
    const char *name;
    void *m;
    int (*train)(void *, const float *, const float *, int64_t, float *);
    int (*evaluate)(void *, const float *, const float *, int64_t, float *);
    int (*predict)(void *, const float *, float *, int64_t);
    const char *(*error)(void *);
} model;

#define WRAP(P)                                                                                          \
    static int P##_tr(void *m, const float *x, const float *y, int64_t n, float *l) { return P##_train_step((P##_model *)m, x, y, n, l); } \
    static int P##_ev(void *m, const float *x, const float *y, int64_t n, float *l) { return P##_evaluate((P##_model *)m, x, y, n, l); } \
    static int P##_pr(void *m, const float *x, float *p, int64_t n) { return P##_predict((P##_model *)m, x, p, n); } \
    static const char *P##_er(void *m) { return P##_last_error((P##_model *)m); }
WRAP(masking)
WRAP(nomask)

typedef struct { double first, last, test_loss, real_mae, pad_mae, pad_max; } result;

static int run(model *md, long n_train, long n_test, int epochs, const float *x, const float *y,
               const float *tx, const float *ty, const unsigned char *treal, float *pred, result *r) {
    for (int e = 0; e < epochs; e++) {
        double sum = 0;
        long batches = 0;
        for (long b = 0; b < n_train; b += BATCH) {
            long rows = n_train - b < BATCH ? n_train - b : BATCH;
            float loss;
            if (md->train(md->m, x + b * STEPS, y + b * KEPT, rows, &loss) != 0) {
                fprintf(stderr, "masking: %s: train step: %s\n", md->name, md->error(md->m));
                return -1;
            }
            sum += loss;
            batches++;
        }
        double mean = sum / batches;   /* the epoch's mean batch loss, as Keras' history reports it */
        if (e == 0) r->first = mean;
        r->last = mean;
        printf("  %-7s epoch %2d: loss %.4f\n", md->name, e + 1, mean);
    }
    float loss;
    if (md->evaluate(md->m, tx, ty, n_test, &loss) != 0 || md->predict(md->m, tx, pred, n_test) != 0) {
        fprintf(stderr, "masking: %s: %s\n", md->name, md->error(md->m));
        return -1;
    }
    r->test_loss = loss;
    double real_sum = 0, pad_sum = 0, pad_max = 0;
    long real_n = 0, pad_n = 0;
    for (long k = 0; k < n_test * KEPT; k++) {
        double err = fabs((double)pred[k] - ty[k]);
        if (treal[k]) { real_sum += err; real_n++; }
        else { pad_sum += err; pad_n++; if (fabs(pred[k]) > pad_max) pad_max = fabs(pred[k]); }
    }
    r->real_mae = real_sum / real_n;
    r->pad_mae = pad_n ? pad_sum / pad_n : 0;
    r->pad_max = pad_max;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s TRAIN TEST EPOCHS\n", argv[0]); return 2; }
    long n_train = atol(argv[1]), n_test = atol(argv[2]);
    int epochs = atoi(argv[3]);
    if (n_train < 1 || n_test < 1 || epochs < 2) { fprintf(stderr, "masking: TRAIN and TEST must be positive, EPOCHS 2 or more\n"); return 2; }

    float *x = malloc(sizeof(float) * STEPS * n_train), *y = malloc(sizeof(float) * KEPT * n_train);
    float *tx = malloc(sizeof(float) * STEPS * n_test), *ty = malloc(sizeof(float) * KEPT * n_test);
    float *pred = malloc(sizeof(float) * KEPT * n_test);
    unsigned char *real = malloc(KEPT * n_train), *treal = malloc(KEPT * n_test);
    if (!x || !y || !tx || !ty || !pred || !real || !treal) { fprintf(stderr, "masking: out of memory\n"); return 1; }
    make_data(n_train, x, y, real);
    make_data(n_test, tx, ty, treal);
    long real_test = 0;
    for (long k = 0; k < n_test * KEPT; k++) real_test += treal[k];
    double share = (double)real_test / (double)(n_test * KEPT);
    printf("%ld training and %ld test sequences of %d to %d steps, pre-padded to %d; %.1f%% of the test's %d kept positions are real\n",
           n_train, n_test, MIN_LEN, STEPS, STEPS, 100 * share, KEPT);

    model models[2] = {
        {"masked", masking_create(), masking_tr, masking_ev, masking_pr, masking_er},
        {"no mask", nomask_create(), nomask_tr, nomask_ev, nomask_pr, nomask_er},
    };
    result res[2];
    for (int i = 0; i < 2; i++) {
        if (!models[i].m) { fprintf(stderr, "masking: create failed\n"); return 1; }
        if (run(&models[i], n_train, n_test, epochs, x, y, tx, ty, treal, pred, &res[i]) != 0) return 1;
    }

    printf("\n%-46s %10s %10s\n", "", "masked", "no mask");
    printf("%-46s %10.4f %10.4f\n", "training loss, epoch 1", res[0].first, res[1].first);
    printf("%-46s %10.4f %10.4f\n", "training loss, last epoch", res[0].last, res[1].last);
    printf("%-46s %10.4f %10.4f\n", "test loss (Keras': all kept positions)", res[0].test_loss, res[1].test_loss);
    printf("%-46s %10.4f %10.4f\n", "test MAE on real positions only", res[0].real_mae, res[1].real_mae);
    printf("%-46s %10.4f %10.4f\n", "test MAE on padded positions (target 0)", res[0].pad_mae, res[1].pad_mae);
    printf("%-46s %10.2g %10.2g\n", "largest |output| at a padded position", res[0].pad_max, res[1].pad_max);
    printf("%-46s %10.4f %10.4f\n", "real-position MAE x real share", res[0].real_mae * share, res[1].real_mae * share);

    int failures = 0;
    if (!(res[0].last < 0.7 * res[0].first)) {
        fprintf(stderr, "masking: FAIL: the masked model's training loss did not drop by 30%% or more (%.4f -> %.4f)\n", res[0].first, res[0].last);
        failures++;
    }
    if (res[0].pad_max != 0) { fprintf(stderr, "masking: FAIL: the masked model's output at a padded position is %g, not 0\n", res[0].pad_max); failures++; }
    /* Padding adds nothing: the loss over all kept positions is the real positions' error, diluted. */
    if (fabs(res[0].test_loss - res[0].real_mae * share) > 1e-5 * (1 + res[0].test_loss)) {
        fprintf(stderr, "masking: FAIL: the masked model's loss %.6f is not its real-position error times the real share, %.6f\n",
                res[0].test_loss, res[0].real_mae * share);
        failures++;
    }
    if (!(res[1].pad_mae > 0)) { fprintf(stderr, "masking: FAIL: the model without a mask has no error at padded positions\n"); failures++; }
    if (!failures)
        printf("\nwith the mask, padded steps output exactly 0 and add nothing to the loss: its loss is the real positions' error "
               "times their share (%.4f = %.4f x %.3f); without it, padding adds %.4f per padded position\n",
               res[0].test_loss, res[0].real_mae, share, res[1].pad_mae);
    masking_destroy(models[0].m);
    nomask_destroy(models[1].m);
    return failures ? 1 : 0;
}
