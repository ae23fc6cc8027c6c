/* A C program using the demo CNN compiled by Kiln.
 *
 *   kiln compile samples/models/mnist_cnn.keras -o OUT     (also writes OUT/mnist_cnn.pc)
 *   export PKG_CONFIG_PATH=OUT
 *   cc samples/c/main.c $(pkg-config --cflags --libs mnist_cnn) -o mnist_demo
 *   ./mnist_demo samples/models/mnist_cnn_x.npy samples/models/mnist_cnn_p.npy
 *
 * Predicts the 4 images, prints each one's class and probability, checks the
 * probabilities against Keras' (exit 1 if any differs by more than 1e-4),
 * then takes one training step on the images.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnist_cnn.h"

/* A tiny .npy reader: little-endian float32 ('<f4'), C order, header v1-v3.
 * Returns the values (malloc'd) and fills shape/rank; NULL on error. */
static float *read_npy(const char *path, int64_t *shape, int *rank) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return NULL; }
    unsigned char pre[10];
    float *data = NULL;
    char *header = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "%s is not a .npy file\n", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else {   /* v2, v3: a 4-byte length; 2 of its bytes are in pre[8..9] */
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) goto done;
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    header = calloc(hlen + 1, 1);
    if (!header || fread(header, 1, hlen, f) != hlen) goto done;
    if (!strstr(header, "'descr': '<f4'") || !strstr(header, "'fortran_order': False")) {
        fprintf(stderr, "%s: only little-endian float32 in C order is read here: %s\n", path, header);
        goto done;
    }
    const char *s = strstr(header, "'shape': (");
    if (!s) goto done;
    s += strlen("'shape': (");
    int64_t count = 1;
    *rank = 0;
    while (*s && *s != ')' && *rank < 8) {
        char *end;
        long long d = strtoll(s, &end, 10);
        if (end == s) break;
        shape[(*rank)++] = d;
        count *= d;
        s = end;
        while (*s == ',' || *s == ' ') s++;
    }
    data = malloc((size_t)count * sizeof(float));
    if (data && fread(data, sizeof(float), (size_t)count, f) != (size_t)count) {
        fprintf(stderr, "%s is truncated\n", path);
        free(data);
        data = NULL;
    }
done:
    free(header);
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGES.npy KERAS_PREDICTIONS.npy\n", argv[0]);
        return 2;
    }
    int64_t xs[8], ps[8];
    int xr, pr;
    float *x = read_npy(argv[1], xs, &xr);
    float *expected = read_npy(argv[2], ps, &pr);
    if (!x || !expected) return 1;
    if (xr != 4 || xs[1] != 28 || xs[2] != 28 || xs[3] != 1 || pr != 2 || ps[0] != xs[0] || ps[1] != 10) {
        fprintf(stderr, "expected images (n, 28, 28, 1) and predictions (n, 10)\n");
        return 1;
    }
    int64_t n = xs[0];

    const mnist_cnn_info_t *info = mnist_cnn_info();
    printf("model %s, compiled by Kiln %s, source sha256 %.12s...\n", info->model, info->kiln_version, info->source_sha256);
    mnist_cnn_model *m = mnist_cnn_create();
    if (!m) { fprintf(stderr, "create: %s\n", mnist_cnn_last_error(NULL)); return 1; }

    /* Inference. */
    float *probs = malloc((size_t)n * 10 * sizeof(float));
    if (mnist_cnn_predict(m, x, probs, n) != 0) {
        fprintf(stderr, "predict: %s\n", mnist_cnn_last_error(m));
        return 1;
    }
    double max_diff = 0;
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++) if (probs[i * 10 + k] > probs[i * 10 + best]) best = k;
        for (int k = 0; k < 10; k++) {
            double d = fabs((double)probs[i * 10 + k] - expected[i * 10 + k]);
            if (d > max_diff) max_diff = d;
        }
        printf("image %lld: class %d (p = %.4f)\n", (long long)i, best, probs[i * 10 + best]);
    }
    printf("max |kiln - keras| = %.3g\n", max_diff);
    if (max_diff > 1e-4) {
        fprintf(stderr, "FAIL: the predictions differ from Keras' by more than 1e-4\n");
        return 1;
    }

    /* One training step (Adam, categorical cross-entropy, as compiled), with
     * one-hot labels: here Keras' predicted classes stand in for real labels. */
    float *labels = calloc((size_t)n * 10, sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++) if (expected[i * 10 + k] > expected[i * 10 + best]) best = k;
        labels[i * 10 + best] = 1.0f;
    }
    float before, loss, after;
    if (mnist_cnn_evaluate(m, x, labels, n, &before) != 0 ||
        mnist_cnn_train_step(m, x, labels, n, &loss) != 0 ||
        mnist_cnn_evaluate(m, x, labels, n, &after) != 0) {
        fprintf(stderr, "training: %s\n", mnist_cnn_last_error(m));
        return 1;
    }
    printf("train step %lld: loss %.4f (evaluate: %.4f before, %.4f after)\n",
           (long long)mnist_cnn_iterations(m), loss, before, after);

    mnist_cnn_destroy(m);
    free(labels);
    free(probs);
    free(expected);
    free(x);
    printf("C sample OK\n");
    return 0;
}
