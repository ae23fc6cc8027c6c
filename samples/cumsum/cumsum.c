/* Cumulative-sum sequence labelling, trained one sequence per call from C.
 * See samples/cumsum/README.md.
 *
 *   cumsum TRAIN TEST MIN_ACCURACY WEIGHTS [SEED]
 *
 * Makes TRAIN random sequences, one at a time, and takes one optimizer step on
 * each (cumsum_train_step with n = 1); then labels TEST fresh sequences with
 * cumsum_predict, prints expected vs predicted for the first few (a step is
 * predicted 1 when the output is above 0.5, as Keras' predict_classes did) and
 * the accuracy over every step; saves the trained state to WEIGHTS (for the
 * Swift program) and exits 1 when the accuracy is below MIN_ACCURACY. SEED
 * (default 1) seeds the training sequences; the test sequences use SEED + 1000.
 *
 * A sequence: STEPS values drawn uniformly from [0, 1); step t is labelled 1
 * once the running sum x_0 + ... + x_t is above LIMIT = STEPS / 4.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cumsum.h"

enum { STEPS = 10 };
static const double LIMIT = STEPS / 4.0;

/* A seeded generator (splitmix64). The Swift program has the same one. */
static uint64_t next_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One sequence: x[t] uniform in [0, 1), y[t] = 1 once the running sum passes LIMIT. */
static void make_sequence(uint64_t *state, float *x, float *y) {
    double sum = 0;
    for (int t = 0; t < STEPS; t++) {
        x[t] = (float)((double)(next_u64(state) >> 11) * 0x1.0p-53);
        sum += x[t];
        y[t] = sum > LIMIT ? 1.0f : 0.0f;
    }
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s TRAIN TEST MIN_ACCURACY WEIGHTS [SEED]\n", argv[0]);
        return 2;
    }
    long train = atol(argv[1]), test = atol(argv[2]);
    double min_acc = atof(argv[3]);
    if (train < 1 || test < 1) { fprintf(stderr, "cumsum: TRAIN and TEST must be positive\n"); return 2; }

    cumsum_model *m = cumsum_create();
    if (!m) { fprintf(stderr, "cumsum: create: %s\n", cumsum_last_error(NULL)); return 1; }

    /* Training: one sequence per call, as the classic program's fit(X, y, epochs=1, batch_size=1). */
    uint64_t train_rng = argc == 6 ? strtoull(argv[5], NULL, 10) : 1;
    uint64_t test_rng = train_rng + 1000;
    float x[STEPS], y[STEPS], loss;
    double window = 0, first_window = -1, last_window = -1;
    const long every = train / 5 > 0 ? train / 5 : 1;
    for (long i = 1; i <= train; i++) {
        make_sequence(&train_rng, x, y);
        if (cumsum_train_step(m, x, y, 1, &loss) != 0) {
            fprintf(stderr, "cumsum: train step %ld: %s\n", i, cumsum_last_error(m));
            return 1;
        }
        window += loss;
        if (i % every == 0) {
            double mean = window / every;
            if (first_window < 0) first_window = mean;
            last_window = mean;
            printf("sequences %5ld-%5ld: mean loss %.4f\n", i - every + 1, i, mean);
            window = 0;
        }
    }

    /* Labelling fresh sequences (another seed), all in one predict call. */
    float *xs = malloc(sizeof(float) * STEPS * (size_t)test), *ys = malloc(sizeof(float) * STEPS * (size_t)test);
    float *ps = malloc(sizeof(float) * STEPS * (size_t)test);
    if (!xs || !ys || !ps) { fprintf(stderr, "cumsum: out of memory\n"); return 1; }
    for (long i = 0; i < test; i++) make_sequence(&test_rng, xs + i * STEPS, ys + i * STEPS);
    if (cumsum_predict(m, xs, ps, test) != 0) { fprintf(stderr, "cumsum: predict: %s\n", cumsum_last_error(m)); return 1; }
    long right = 0;
    for (long i = 0; i < test; i++) {
        for (int t = 0; t < STEPS; t++) right += (ps[i * STEPS + t] > 0.5f) == (ys[i * STEPS + t] > 0.5f);
        if (i < 4) {
            printf("sequence %ld\n  x        ", i);
            for (int t = 0; t < STEPS; t++) printf(" %.2f", xs[i * STEPS + t]);
            printf("\n  expected ");
            for (int t = 0; t < STEPS; t++) printf("    %d", (int)ys[i * STEPS + t]);
            printf("\n  predicted");
            for (int t = 0; t < STEPS; t++) printf("    %d", ps[i * STEPS + t] > 0.5f);
            printf("\n");
        }
    }
    double acc = (double)right / (double)(test * STEPS);
    printf("trained on %ld sequences, one per call (mean loss %.4f in the first fifth, %.4f in the last)\n",
           train, first_window, last_window);
    printf("accuracy on %ld fresh sequences: %.4f (%ld of %ld steps)\n", test, acc, right, test * STEPS);
    if (cumsum_save_weights(m, argv[4]) != 0) { fprintf(stderr, "cumsum: save: %s\n", cumsum_last_error(m)); return 1; }
    cumsum_destroy(m);
    free(xs);
    free(ys);
    free(ps);
    if (acc < min_acc) {
        fprintf(stderr, "cumsum: FAIL: accuracy %.4f is below %.4f\n", acc, min_acc);
        return 1;
    }
    return 0;
}
