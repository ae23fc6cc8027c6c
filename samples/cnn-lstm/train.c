/* train.c: the CNN-LSTM sample's C program. Trains the model compiled by Kiln
 * (samples/cnn-lstm/models/cnn_lstm_*.keras, compiled with --name cnn_lstm)
 * on handwritten digits cut into four tiles, reports the held-out accuracy
 * and exits 1 when it is below --min-accuracy.
 *
 *   kiln compile samples/cnn-lstm/models/cnn_lstm_digits.keras -o OUT --name cnn_lstm
 *   cc -DTILE=4 -I OUT samples/cnn-lstm/train.c -L OUT -lcnn_lstm -lm -Wl,-rpath,OUT -o OUT/train
 *   OUT/train --csv digits.csv --epochs 15 --min-accuracy 90
 *
 * Each image (2*TILE x 2*TILE pixels) becomes a sequence of its four
 * quadrants, top-left, top-right, bottom-left, bottom-right: the model input
 * (4, TILE, TILE, 1). TILE is fixed at build time: 4 for the UCI digits
 * (8x8, --csv) and 14 for MNIST (28x28, --mnist DIR with its IDX files).
 *
 * UCI digits: the 1,797 images are shuffled with a fixed seed (SplitMix64,
 * Fisher-Yates), the first --train (1,500) train and the rest (297) are held
 * out. MNIST: the train- files train, the t10k- files are held out
 * (--train / --test take the first N of each). Each epoch shuffles the
 * training images with the same generator and takes cnn_lstm_train_step on
 * batches of --batch-size (32). Then cnn_lstm_save_weights writes the
 * trained state, and --write-heldout writes the held-out tiles and labels as
 * .npy files for the Swift program (classify.swift).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cnn_lstm.h"
#include "idx.h"

#ifndef TILE
#error "build with -DTILE=4 (UCI digits, 8x8 images) or -DTILE=14 (MNIST, 28x28 images)"
#endif
#define SIDE (2 * TILE)               /* image side */
#define ROW (4 * TILE * TILE)         /* floats per image: 4 tiles of TILE x TILE x 1 */
#define CLASSES 10
#define DEFAULT_SEED 20240909ULL      /* tools/make_cnn_lstm_sample.py's SPLIT_SEED */

typedef struct {
    int64_t n;
    float *x;     /* n * ROW: the tiles of each image */
    int32_t *y;   /* n labels 0..9 */
} dataset;

/* ------------------------------------------------------------ small helpers */

static void die(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* SplitMix64 (Steele, Lea, Flood 2014); tools/make_cnn_lstm_sample.py has the same. */
static uint64_t rng_state;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static void shuffle(int64_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_next() % (uint64_t)(i + 1));
        int64_t t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

static dataset alloc_set(int64_t n) {
    dataset d = {n, malloc((size_t)n * ROW * sizeof(float)), malloc((size_t)n * sizeof(int32_t))};
    if (!d.x || !d.y) { fprintf(stderr, "out of memory for %lld images\n", (long long)n); exit(1); }
    return d;
}

/* Image pixel (r, c) of a SIDE x SIDE image goes to tile (r / TILE) * 2 + c / TILE. */
static void put_pixel(float *row, int r, int c, float v) {
    int tile = (r / TILE) * 2 + c / TILE;
    row[tile * TILE * TILE + (r % TILE) * TILE + (c % TILE)] = v;
}

/* ------------------------------------------------------------ UCI digits (CSV) */

/* The CSV of sklearn's digits: per line 64 pixels 0..16 (8x8, row by row), then the digit. */
static dataset read_digits_csv(const char *path) {
    if (SIDE != 8) {
        fprintf(stderr, "--csv reads the UCI digits, 8x8 images; this program was built with TILE=%d for %dx%d images "
                        "(build it with -DTILE=4 and the cnn_lstm_digits model)\n", TILE, SIDE, SIDE);
        exit(1);
    }
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open the digits CSV %s: %s", path, strerror(errno));
    int64_t cap = 2048, n = 0;
    dataset d = alloc_set(cap);
    char line[4096];
    long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "%s line %ld is longer than %zu characters; expected 65 comma-separated integers\n", path, lineno, sizeof line - 2);
            exit(1);
        }
        if (strspn(line, " \t\r\n") == len) continue;   /* a blank line */
        if (n == cap) {
            cap *= 2;
            d.x = realloc(d.x, (size_t)cap * ROW * sizeof(float));
            d.y = realloc(d.y, (size_t)cap * sizeof(int32_t));
            if (!d.x || !d.y) { fprintf(stderr, "out of memory reading %s\n", path); exit(1); }
        }
        const char *s = line;
        for (int k = 0; k < 65; k++) {
            char *end;
            errno = 0;
            long v = strtol(s, &end, 10);
            int last = k == 64;
            if (end == s || errno != 0 || (*end != ',' && !last) ||
                (last && strspn(end, " \t\r\n") != strlen(end))) {
                fprintf(stderr, "%s line %ld: field %d is not %s; expected 65 comma-separated integers "
                                "(64 pixels 0..16, then the digit 0..9)\n",
                        path, lineno, k + 1, last ? "the last of 65 integers" : "an integer followed by a comma");
                exit(1);
            }
            if (last ? (v < 0 || v > 9) : (v < 0 || v > 16)) {
                fprintf(stderr, "%s line %ld: field %d is %ld; expected %s\n", path, lineno, k + 1, v,
                        last ? "the digit 0..9" : "a pixel value 0..16");
                exit(1);
            }
            if (last) d.y[n] = (int32_t)v;
            else put_pixel(d.x + n * ROW, k / 8, k % 8, (float)v / 16.0f);
            s = end + 1;
        }
        n++;
    }
    if (ferror(f)) die("cannot read %s: %s", path, strerror(errno));
    fclose(f);
    if (n == 0) { fprintf(stderr, "%s holds no images\n", path); exit(1); }
    d.n = n;
    return d;
}

/* ------------------------------------------------------------ MNIST (IDX) */

/* Fills `path` with DIR/PREFIX-WHAT-KIND (MNIST's name, e.g. train-images-idx3-ubyte) or, when
 * only that exists, Kaggle's spelling DIR/PREFIX-WHAT.KIND; exits when neither is there. */
static void find_idx(const char *dir, const char *prefix, const char *what, const char *kind, char *path, size_t len) {
    char other[1024];
    snprintf(path, len, "%s/%s-%s-%s", dir, prefix, what, kind);
    snprintf(other, sizeof other, "%s/%s-%s.%s", dir, prefix, what, kind);
    if (access(path, R_OK) == 0) return;
    if (access(other, R_OK) == 0) { snprintf(path, len, "%s", other); return; }
    fprintf(stderr, "--mnist %s: found neither %s nor %s; the folder must hold MNIST's four IDX files "
                    "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), decompressed\n",
            dir, path, other);
    exit(1);
}

static dataset read_mnist(const char *dir, const char *prefix, int64_t limit) {
    char err[IDX_ERR_LEN], images[1024], labels[1024];
    find_idx(dir, prefix, "images", "idx3-ubyte", images, sizeof images);
    find_idx(dir, prefix, "labels", "idx1-ubyte", labels, sizeof labels);
    idx_array x, y;
    if (idx_read_set(images, labels, &x, &y, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); exit(1); }
    if (x.size[1] != SIDE || x.size[2] != SIDE) {
        fprintf(stderr, "%s holds %ux%u images; this program was built with TILE=%d for %dx%d images "
                        "(MNIST's are 28x28: build with -DTILE=14 and the cnn_lstm_mnist model)\n",
                images, x.size[1], x.size[2], TILE, SIDE, SIDE);
        exit(1);
    }
    int64_t n = x.size[0];
    if (limit > 0 && limit < n) n = limit;
    dataset d = alloc_set(n);
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *img = x.data + i * SIDE * SIDE;
        for (int r = 0; r < SIDE; r++)
            for (int c = 0; c < SIDE; c++) put_pixel(d.x + i * ROW, r, c, img[r * SIDE + c] / 255.0f);
        d.y[i] = y.data[i];
    }
    idx_free(&x);
    idx_free(&y);
    return d;
}

/* ------------------------------------------------------------ .npy output */

/* Writes a float32 or int32 array as .npy ('<f4', '<i4': the host is little-endian, as x86-64
 * and arm64 Linux are), through a temporary file renamed over `path`. */
static int write_npy(const char *path, const void *data, const char *descr, const int64_t *shape, int rank) {
    char header[256], dims[160] = "";
    int64_t count = 1;
    for (int k = 0; k < rank; k++) {
        char one[32];
        snprintf(one, sizeof one, "%lld%s", (long long)shape[k], k + 1 < rank ? ", " : rank == 1 ? "," : "");
        strcat(dims, one);
        count *= shape[k];
    }
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    while ((10 + len + 1) % 64 != 0) header[len++] = ' ';
    header[len++] = '\n';
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) { fprintf(stderr, "cannot write %s: %s\n", tmp, strerror(errno)); return -1; }
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)len, f) == (size_t)len &&
             fwrite(data, 4, (size_t)count, f) == (size_t)count;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ training */

static void check(int status, cnn_lstm_model *m, const char *what) {
    if (status != 0) {
        fprintf(stderr, "%s: %s\n", what, cnn_lstm_last_error(m));
        exit(1);
    }
}

/* Correctly classified images of `d`. */
static int64_t count_correct(cnn_lstm_model *m, const dataset *d) {
    enum { CHUNK = 512 };
    static float probs[CHUNK * CLASSES];
    int64_t correct = 0;
    for (int64_t at = 0; at < d->n; at += CHUNK) {
        int64_t k = d->n - at < CHUNK ? d->n - at : CHUNK;
        check(cnn_lstm_predict(m, d->x + at * ROW, probs, k), m, "cnn_lstm_predict");
        for (int64_t i = 0; i < k; i++) {
            int best = 0;
            for (int c = 1; c < CLASSES; c++) if (probs[i * CLASSES + c] > probs[i * CLASSES + best]) best = c;
            correct += best == d->y[at + i];
        }
    }
    return correct;
}

static void usage(const char *prog) {
    fprintf(stderr,
            "usage: %s (--csv DIGITS.csv | --mnist DIR) [--epochs E] [--min-accuracy PERCENT] [--batch-size B]\n"
            "          [--train N] [--test N] [--seed S] [--save-weights FILE] [--write-heldout PREFIX]\n", prog);
    exit(2);
}

static long long int_arg(const char *flag, const char *text, long long lo) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || errno || v < lo) {
        fprintf(stderr, "%s takes an integer >= %lld, not '%s'\n", flag, lo, text);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    const char *csv = NULL, *mnist = NULL, *save = NULL, *heldout_prefix = NULL;
    int epochs = 15, batch = 32;
    double min_accuracy = 90.0;
    int64_t n_train = -1, n_test = -1;
    uint64_t seed = DEFAULT_SEED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) usage(argv[0]);
        const char *v = argv[++i];
        if (!strcmp(a, "--csv")) csv = v;
        else if (!strcmp(a, "--mnist")) mnist = v;
        else if (!strcmp(a, "--epochs")) epochs = (int)int_arg(a, v, 1);
        else if (!strcmp(a, "--batch-size")) batch = (int)int_arg(a, v, 1);
        else if (!strcmp(a, "--train")) n_train = int_arg(a, v, 1);
        else if (!strcmp(a, "--test")) n_test = int_arg(a, v, 1);
        else if (!strcmp(a, "--seed")) seed = (uint64_t)int_arg(a, v, 0);
        else if (!strcmp(a, "--save-weights")) save = v;
        else if (!strcmp(a, "--write-heldout")) heldout_prefix = v;
        else if (!strcmp(a, "--min-accuracy")) {
            char *end;
            min_accuracy = strtod(v, &end);
            if (end == v || *end || !(min_accuracy >= 0 && min_accuracy <= 100)) {
                fprintf(stderr, "--min-accuracy takes a percentage 0..100, not '%s'\n", v);
                return 2;
            }
        } else usage(argv[0]);
    }
    if ((csv == NULL) == (mnist == NULL)) usage(argv[0]);

    /* The data: a training set and a held-out set of tiles and labels. */
    rng_state = seed;
    dataset train, held;
    if (csv) {
        dataset all = read_digits_csv(csv);
        if (n_train < 0) n_train = 1500;
        if (n_train >= all.n) {
            fprintf(stderr, "--train %lld leaves no image of the %lld in %s held out\n", (long long)n_train, (long long)all.n, csv);
            return 1;
        }
        int64_t *order = malloc((size_t)all.n * sizeof *order);
        for (int64_t i = 0; i < all.n; i++) order[i] = i;
        shuffle(order, all.n);
        int64_t n_held = all.n - n_train;
        if (n_test > 0 && n_test < n_held) n_held = n_test;
        train = alloc_set(n_train);
        held = alloc_set(n_held);
        for (int64_t i = 0; i < n_train + n_held; i++) {
            dataset *to = i < n_train ? &train : &held;
            int64_t k = i < n_train ? i : i - n_train;
            memcpy(to->x + k * ROW, all.x + order[i] * ROW, ROW * sizeof(float));
            to->y[k] = all.y[order[i]];
        }
        printf("UCI digits (%s): %lld images of 8x8 as 4 tiles of 4x4; %lld train, %lld held out (split seed %llu)\n",
               csv, (long long)all.n, (long long)train.n, (long long)held.n, (unsigned long long)seed);
        free(order);
        free(all.x);
        free(all.y);
    } else {
        train = read_mnist(mnist, "train", n_train);
        held = read_mnist(mnist, "t10k", n_test);
        printf("MNIST (%s): 28x28 images as 4 tiles of 14x14; %lld train, %lld held out (t10k)\n",
               mnist, (long long)train.n, (long long)held.n);
    }

    cnn_lstm_model *m = cnn_lstm_create();
    if (!m) { fprintf(stderr, "cnn_lstm_create: %s\n", cnn_lstm_last_error(NULL)); return 1; }
    cnn_lstm_set_seed(m, seed);   /* the dropout masks */
    check(cnn_lstm_reserve(m, batch), m, "cnn_lstm_reserve");

    float *bx = malloc((size_t)batch * ROW * sizeof(float));
    int32_t *by = malloc((size_t)batch * sizeof(int32_t));
    int64_t *order = malloc((size_t)train.n * sizeof *order);
    if (!bx || !by || !order) { fprintf(stderr, "out of memory\n"); return 1; }
    for (int64_t i = 0; i < train.n; i++) order[i] = i;

    printf("before training: held-out accuracy %lld/%lld\n", (long long)count_correct(m, &held), (long long)held.n);
    double start = now();
    int64_t correct = 0;
    for (int e = 1; e <= epochs; e++) {
        double t0 = now();
        shuffle(order, train.n);
        double sum = 0;
        for (int64_t at = 0; at < train.n; at += batch) {
            int64_t k = train.n - at < batch ? train.n - at : batch;
            for (int64_t i = 0; i < k; i++) {
                memcpy(bx + i * ROW, train.x + order[at + i] * ROW, ROW * sizeof(float));
                by[i] = train.y[order[at + i]];
            }
            float loss;
            check(cnn_lstm_train_step(m, bx, by, k, &loss), m, "cnn_lstm_train_step");
            if (!isfinite(loss)) { fprintf(stderr, "epoch %d: the training loss is %f\n", e, loss); return 1; }
            sum += (double)loss * k;
        }
        double t1 = now();
        correct = count_correct(m, &held);
        printf("epoch %2d/%d: loss %.4f, held-out accuracy %lld/%lld = %.2f%%  (train %.2f s)\n", e, epochs, sum / train.n,
               (long long)correct, (long long)held.n, 100.0 * correct / held.n, t1 - t0);
        fflush(stdout);
    }
    double accuracy = 100.0 * correct / held.n;
    printf("trained %d epochs (%lld steps) in %.1f s\n", epochs, (long long)cnn_lstm_iterations(m), now() - start);

    if (save) {
        check(cnn_lstm_save_weights(m, save), m, "cnn_lstm_save_weights");
        printf("saved the trained weights to %s\n", save);
    }
    if (heldout_prefix) {
        char px[1024], py[1024];
        snprintf(px, sizeof px, "%s_x.npy", heldout_prefix);
        snprintf(py, sizeof py, "%s_y.npy", heldout_prefix);
        int64_t xs[5] = {held.n, 4, TILE, TILE, 1}, ys[1] = {held.n};
        if (write_npy(px, held.x, "<f4", xs, 5) != 0 || write_npy(py, held.y, "<i4", ys, 1) != 0) return 1;
        printf("wrote the held-out set to %s and %s\n", px, py);
    }
    printf("held-out accuracy: %lld/%lld = %.2f%% (required: %.1f%%)\n", (long long)correct, (long long)held.n, accuracy, min_accuracy);
    cnn_lstm_destroy(m);
    if (accuracy < min_accuracy) {
        fprintf(stderr, "FAIL: held-out accuracy %.2f%% is below %.1f%%\n", accuracy, min_accuracy);
        return 1;
    }
    return 0;
}
