/* The optimizer race: one stacked-LSTM regression model compiled seven times by
 * Kiln, once per Keras optimizer (race_sgd, race_rmsprop, ..., race_nadam), all
 * linked into this program. See samples/optimizers/README.md.
 *
 *   race data DIR [TRAIN TEST]   writes DIR/x_train.npy, y_train.npy, x_test.npy, y_test.npy
 *   race report DIR LEVEL MAX_TEST_MSE
 *       for each optimizer O: loads the weights `kiln fit` trained (DIR/weights_O/NNN.npy),
 *       evaluates the held-out set with race_O_evaluate, reads DIR/O.json (the loss per
 *       epoch); prints one line per optimizer, which reached a training loss below LEVEL
 *       first, and exits 1 unless every optimizer's loss dropped and the best test MSE is
 *       below MAX_TEST_MSE.
 *
 * The data: sequences of STEPS x values drawn uniformly from [-1, 1]; the target of
 * every step is y = 3.3 x + 2 + noise, noise ~ N(0, NOISE^2). The best any model can
 * do is a mean squared error of NOISE^2 = 0.04.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "race_sgd.h"
#include "race_rmsprop.h"
#include "race_adagrad.h"
#include "race_adadelta.h"
#include "race_adam.h"
#include "race_adamax.h"
#include "race_nadam.h"

enum { STEPS = 10 };
static const double NOISE = 0.2;

/* ---- a seeded generator (splitmix64), uniform and normal draws */
static uint64_t rng_state = 0x52414345ULL;   /* "RACE" */
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double uniform(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }   /* [0, 1) */
static double normal(void) {   /* Box-Muller */
    double u = 1.0 - uniform(), v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* ---- .npy files: float32, C order */
static int write_npy(const char *path, const float *data, const int64_t *shape, int rank) {
    char dims[128] = "";
    for (int i = 0; i < rank; i++) {
        char d[32];
        snprintf(d, sizeof d, i == 0 && rank == 1 ? "%lld," : i == 0 ? "%lld" : ", %lld", (long long)shape[i]);
        strcat(dims, d);
    }
    char header[256];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    int total = (10 + len + 1 + 63) / 64 * 64;   /* magic + header + '\n', padded to 64 bytes */
    memset(header + len, ' ', (size_t)(total - 10 - len - 1));
    header[total - 10 - 1] = '\n';
    int64_t count = 1;
    for (int i = 0; i < rank; i++) count *= shape[i];
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "race: cannot write %s\n", path); return -1; }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 0xFF), (unsigned char)((total - 10) >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)(total - 10), f) == (size_t)(total - 10) &&
             fwrite(data, sizeof(float), (size_t)count, f) == (size_t)count;
    if (fclose(f) != 0 || !ok) { fprintf(stderr, "race: cannot write %s\n", path); return -1; }
    return 0;
}

/* Reads a float32 C-order .npy (header v1-v3); fills its shape (rank <= 4) and returns
 * the values, or NULL with a message. */
static float *read_npy(const char *path, int64_t *shape, int *rank) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "race: cannot open %s\n", path); return NULL; }
    unsigned char pre[12];
    float *data = NULL;
    char *header = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) { fprintf(stderr, "race: %s is not a .npy file\n", path); goto done; }
    size_t hlen = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] != 1) {
        if (fread(pre + 10, 1, 2, f) != 2) goto done;
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    header = calloc(hlen + 1, 1);
    if (!header || fread(header, 1, hlen, f) != hlen) { fprintf(stderr, "race: %s is truncated\n", path); goto done; }
    const char *s = strstr(header, "'shape': (");
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False") || !s) {
        fprintf(stderr, "race: %s is not little-endian float32 in C order\n", path);
        goto done;
    }
    int64_t count = 1;
    *rank = 0;
    for (s += strlen("'shape': ("); *s && *s != ')' && *rank < 4;) {
        char *end;
        long long d = strtoll(s, &end, 10);
        if (end == s) break;
        shape[(*rank)++] = d;
        count *= d;
        for (s = end; *s == ',' || *s == ' '; s++) {}
    }
    data = malloc((size_t)count * sizeof(float) + 1);
    if (data && fread(data, sizeof(float), (size_t)count, f) != (size_t)count) {
        fprintf(stderr, "race: %s holds fewer values than its shape says\n", path);
        free(data);
        data = NULL;
    }
done:
    free(header);
    fclose(f);
    return data;
}

/* ---- the data */
static int make_data(const char *dir, int64_t n_train, int64_t n_test) {
    const char *names[2][2] = {{"x_train.npy", "y_train.npy"}, {"x_test.npy", "y_test.npy"}};
    int64_t rows[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        float *x = malloc((size_t)(rows[s] * STEPS) * sizeof(float)), *y = malloc((size_t)(rows[s] * STEPS) * sizeof(float));
        if (!x || !y) { fprintf(stderr, "race: out of memory\n"); return 1; }
        for (int64_t i = 0; i < rows[s] * STEPS; i++) {
            x[i] = (float)(2.0 * uniform() - 1.0);
            y[i] = (float)(3.3 * x[i] + 2.0 + NOISE * normal());
        }
        int64_t shape[3] = {rows[s], STEPS, 1};
        char px[4096], py[4096];
        snprintf(px, sizeof px, "%s/%s", dir, names[s][0]);
        snprintf(py, sizeof py, "%s/%s", dir, names[s][1]);
        if (write_npy(px, x, shape, 3) || write_npy(py, y, shape, 3)) return 1;
        free(x);
        free(y);
    }
    printf("wrote %lld training and %lld test sequences of %d steps to %s\n", (long long)n_train, (long long)n_test, STEPS, dir);
    return 0;
}

/* ---- the seven compiled models behind one table: each NAME_* function wrapped type-correctly */
typedef struct {
    const char *name;
    void *(*create)(void);
    void (*destroy)(void *);
    int64_t (*num_weights)(void *);
    int (*set_weight)(void *, int, const float *, int64_t);
    int (*evaluate)(void *, const float *, const float *, int64_t, float *);
    int (*predict)(void *, const float *, float *, int64_t);
    const char *(*last_error)(void *);
} racer;

#define RACER(P)                                                                                        \
    static void *P##_new(void) { return P##_create(); }                                                 \
    static void P##_free(void *m) { P##_destroy((P##_model *)m); }                                      \
    static int64_t P##_nw(void *m) { return P##_num_weights((P##_model *)m); }                          \
    static int P##_set(void *m, int i, const float *s, int64_t c) { return P##_set_weight((P##_model *)m, i, s, c); } \
    static int P##_eval(void *m, const float *x, const float *y, int64_t n, float *l) { return P##_evaluate((P##_model *)m, x, y, n, l); } \
    static int P##_pred(void *m, const float *x, float *y, int64_t n) { return P##_predict((P##_model *)m, x, y, n); } \
    static const char *P##_err(void *m) { return P##_last_error((P##_model *)m); }
#define ENTRY(P, NAME) {NAME, P##_new, P##_free, P##_nw, P##_set, P##_eval, P##_pred, P##_err}

RACER(race_sgd)
RACER(race_rmsprop)
RACER(race_adagrad)
RACER(race_adadelta)
RACER(race_adam)
RACER(race_adamax)
RACER(race_nadam)

static const racer racers[] = {
    ENTRY(race_sgd, "sgd"), ENTRY(race_rmsprop, "rmsprop"), ENTRY(race_adagrad, "adagrad"),
    ENTRY(race_adadelta, "adadelta"), ENTRY(race_adam, "adam"), ENTRY(race_adamax, "adamax"), ENTRY(race_nadam, "nadam"),
};
enum { RACERS = sizeof racers / sizeof racers[0] };

/* Reads {"loss": [a, b, ...]} as written by `kiln fit --history`; returns the count, -1 on error. */
static int read_history(const char *path, double *loss, int max) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "race: cannot open history %s\n", path); return -1; }
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    char *p = strstr(text, "\"loss\"");
    p = p ? strchr(p, '[') : NULL;
    if (!p) { fprintf(stderr, "race: %s has no \"loss\" list\n", path); return -1; }
    int n = 0;
    for (p++; *p && *p != ']' && n < max;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p) { fprintf(stderr, "race: %s: \"loss\" holds something that is not a number\n", path); return -1; }
        loss[n++] = v;
        p = end;
        while (*p == ',' || *p == ' ' || *p == '\n') p++;
    }
    return n;
}

static int report(const char *dir, double level, double max_test) {
    char path[4096];
    int64_t xs[4], ys[4];
    int xr, yr;
    snprintf(path, sizeof path, "%s/x_test.npy", dir);
    float *x = read_npy(path, xs, &xr);
    snprintf(path, sizeof path, "%s/y_test.npy", dir);
    float *y = read_npy(path, ys, &yr);
    if (!x || !y) return 1;
    if (xr != 3 || yr != 3 || xs[1] != STEPS || xs[2] != 1 || memcmp(xs, ys, sizeof xs[0] * 3) != 0) {
        fprintf(stderr, "race: %s/x_test.npy and y_test.npy must both be (n, %d, 1)\n", dir, STEPS);
        return 1;
    }
    int64_t n_test = xs[0];
    float *pred = malloc(sizeof(float) * (size_t)(n_test * STEPS));
    if (!pred) { fprintf(stderr, "race: out of memory\n"); return 1; }

    double test[RACERS], hist[RACERS][1024];
    int epochs[RACERS], reached[RACERS];
    int failures = 0, best = -1, fastest = -1;
    printf("%-9s %10s %10s %12s %10s\n", "optimizer", "loss ep 1", "loss last", "epoch < lvl", "test MSE");
    for (int r = 0; r < RACERS; r++) {
        const racer *o = &racers[r];
        void *m = o->create();
        if (!m) { fprintf(stderr, "race: %s: create failed\n", o->name); return 1; }
        int64_t nw = o->num_weights(m);
        for (int k = 0; k < nw; k++) {
            /* set_weight refuses an array whose size is not the weight's. */
            int64_t shape[4], count = 1;
            int rank;
            snprintf(path, sizeof path, "%s/weights_%s/%03d.npy", dir, o->name, k);
            float *w = read_npy(path, shape, &rank);
            if (!w) return 1;
            for (int i = 0; i < rank; i++) count *= shape[i];
            if (o->set_weight(m, k, w, count) != 0) {
                fprintf(stderr, "race: %s: %s: %s\n", o->name, path, o->last_error(m));
                return 1;
            }
            free(w);
        }
        /* The test loss as the library computes it (evaluate: mse, dropout off), checked against
         * the mean squared error of its predictions computed here. */
        float loss;
        if (o->evaluate(m, x, y, n_test, &loss) != 0 || o->predict(m, x, pred, n_test) != 0) {
            fprintf(stderr, "race: %s: %s\n", o->name, o->last_error(m));
            return 1;
        }
        o->destroy(m);
        double sq = 0;
        for (int64_t i = 0; i < n_test * STEPS; i++) sq += ((double)pred[i] - y[i]) * ((double)pred[i] - y[i]);
        sq /= (double)(n_test * STEPS);
        if (fabs(sq - loss) > 1e-4 * sq) {
            fprintf(stderr, "race: FAIL: %s: evaluate gives %.6f, the predictions' mean squared error is %.6f\n", o->name, loss, sq);
            failures++;
        }
        test[r] = loss;
        snprintf(path, sizeof path, "%s/%s.json", dir, o->name);
        epochs[r] = read_history(path, hist[r], 1024);
        if (epochs[r] < 2) { fprintf(stderr, "race: %s: %s needs two epochs or more\n", o->name, path); return 1; }
        reached[r] = 0;
        for (int e = 0; e < epochs[r]; e++) if (hist[r][e] < level) { reached[r] = e + 1; break; }
        char when[32];
        if (reached[r]) snprintf(when, sizeof when, "%d", reached[r]); else snprintf(when, sizeof when, "never");
        double first = hist[r][0], last = hist[r][epochs[r] - 1];
        printf("%-9s %10.4f %10.4f %12s %10.4f\n", o->name, first, last, when, test[r]);
        if (!(last < first)) { fprintf(stderr, "race: FAIL: %s's training loss did not drop (%.4f -> %.4f)\n", o->name, first, last); failures++; }
        if (best < 0 || test[r] < test[best]) best = r;
        /* Fastest: fewest epochs to go below the level; a tie goes to the lower loss at that epoch. */
        if (reached[r] && (fastest < 0 || reached[r] < reached[fastest] ||
                           (reached[r] == reached[fastest] && hist[r][reached[r] - 1] < hist[fastest][reached[fastest] - 1])))
            fastest = r;
    }
    if (fastest >= 0)
        printf("fastest: %s (training loss below %.3g after %d epoch%s)\n", racers[fastest].name, level, reached[fastest], reached[fastest] == 1 ? "" : "s");
    else
        printf("fastest: none reached a training loss below %.3g\n", level);
    printf("best test MSE: %s, %.4f (noise floor %.4f)\n", racers[best].name, test[best], NOISE * NOISE);
    if (!(test[best] < max_test)) { fprintf(stderr, "race: FAIL: the best test MSE %.4f is not below %.4f\n", test[best], max_test); failures++; }
    free(x);
    free(y);
    free(pred);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "data") == 0 && (argc == 3 || argc == 5)) {
        int64_t train = argc == 5 ? atoll(argv[3]) : 2000, test = argc == 5 ? atoll(argv[4]) : 500;
        if (train < 1 || test < 1) { fprintf(stderr, "race: TRAIN and TEST must be positive\n"); return 2; }
        return make_data(argv[2], train, test);
    }
    if (argc == 5 && strcmp(argv[1], "report") == 0) return report(argv[2], atof(argv[3]), atof(argv[4]));
    fprintf(stderr, "usage: %s data DIR [TRAIN TEST] | %s report DIR LEVEL MAX_TEST_MSE\n", argv[0], argv[0]);
    return 2;
}
