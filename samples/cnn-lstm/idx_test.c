/* idx_test.c: tests idx.h, the sample's MNIST IDX reader, on files it writes
 * (MNIST itself cannot be downloaded here), and writes an MNIST-shaped data
 * set for train.c's --mnist path.
 *
 *   cc -I samples/cnn-lstm samples/cnn-lstm/idx_test.c -o idx_test
 *   ./idx_test check DIR                 writes good and malformed IDX files into DIR and reads
 *                                        them back: exit 0 when every check passes
 *   ./idx_test mnist-like DIGITS.csv DIR writes DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte:
 *                                        the UCI digits grown to 28x28 (each pixel a 3x3 block,
 *                                        2 pixels of border, 0..16 scaled to 0..255), the first
 *                                        1,500 rows as train-, the other 297 as t10k-
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

static int failures = 0;

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "idx_test: cannot write %s\n", path);
        exit(1);
    }
}

/* An IDX file of unsigned bytes: magic (0, 0, type, dims), big-endian sizes, data. */
static size_t idx_bytes(unsigned char *out, int type, int dims, const uint32_t *size, const unsigned char *data, size_t n) {
    size_t at = 0;
    out[at++] = 0; out[at++] = 0; out[at++] = (unsigned char)type; out[at++] = (unsigned char)dims;
    for (int d = 0; d < dims; d++) {
        out[at++] = size[d] >> 24; out[at++] = size[d] >> 16 & 0xff; out[at++] = size[d] >> 8 & 0xff; out[at++] = size[d] & 0xff;
    }
    memcpy(out + at, data, n);
    return at + n;
}

/* idx_read / idx_read_set must fail with a message containing `part`. */
static void expect_error(int status, const char *err, const char *part, const char *what) {
    if (status == 0) {
        printf("FAIL %s: read without error\n", what);
        failures++;
    } else if (!strstr(err, part)) {
        printf("FAIL %s: the error '%s' lacks '%s'\n", what, err, part);
        failures++;
    } else {
        printf("ok   %s: %s\n", what, err);
    }
}

static int check(const char *dir) {
    enum { N = 3, R = 28, C = 28 };
    static unsigned char pixels[N * R * C], buf[N * R * C + 64];
    char images[1024], labels[1024], path[1024], err[IDX_ERR_LEN];
    for (int i = 0; i < N * R * C; i++) pixels[i] = (unsigned char)(i * 7 + i / 5);
    unsigned char digits[N] = {7, 0, 9};
    uint32_t isize[3] = {N, R, C}, lsize[1] = {N};
    snprintf(images, sizeof images, "%s/good-images-idx3-ubyte", dir);
    snprintf(labels, sizeof labels, "%s/good-labels-idx1-ubyte", dir);
    write_bytes(images, buf, idx_bytes(buf, 0x08, 3, isize, pixels, sizeof pixels));
    write_bytes(labels, buf, idx_bytes(buf, 0x08, 1, lsize, digits, N));

    /* The good pair reads back byte for byte. */
    idx_array x, y;
    if (idx_read_set(images, labels, &x, &y, err, sizeof err) != 0) {
        printf("FAIL good files: %s\n", err);
        return 1;
    }
    if (x.dims != 3 || x.size[0] != N || x.size[1] != R || x.size[2] != C || y.dims != 1 || y.size[0] != N ||
        memcmp(x.data, pixels, sizeof pixels) != 0 || memcmp(y.data, digits, N) != 0) {
        printf("FAIL good files: read back (%u, %u, %u) images and %u labels that differ from those written\n",
               x.size[0], x.size[1], x.size[2], y.size[0]);
        failures++;
    } else {
        printf("ok   good files: %u images of %ux%u and their labels read back byte for byte\n", x.size[0], x.size[1], x.size[2]);
    }
    idx_free(&x);
    idx_free(&y);

    /* Malformed files: one clear sentence each, naming the file. */
    struct { const char *name; int dims; unsigned char bytes[64]; size_t n; const char *part; } bad[] = {
        {"empty", 3, {0}, 0, "fewer than the 4 of the magic number"},
        {"gzip", 3, {0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4}, 8, "gzip-compressed; decompress it first"},
        {"text", 3, {'P', '5', '\n', '2', '8', ' ', '2', '8'}, 8, "not an IDX file: its magic number starts with bytes 0x50 0x35"},
        {"float", 1, {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0}, 12, "holds float elements (type 0x0d)"},
        {"labels-as-images", 3, {0, 0, 0x08, 1, 0, 0, 0, 2, 3, 4}, 10, "has 1 dimension; images (count, rows, columns) have 3"},
        {"images-as-labels", 1, {0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 5}, 17, "has 3 dimensions; labels (count) have 1"},
        {"short-header", 3, {0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0}, 10, "truncated: its header needs 16 bytes, the file has 10"},
        {"short-data", 3, {0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5}, 21, "truncated: its header declares 8 bytes of data, the file holds 5"},
        {"extra-data", 1, {0, 0, 0x08, 1, 0, 0, 0, 2, 3, 4, 5}, 11, "has 1 byte after the 2 bytes of data"},
        {"zero-size", 3, {0, 0, 0x08, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, 16, "declares size 0 for dimension 2"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(path, sizeof path, "%s/%s-idx-ubyte", dir, bad[k].name);
        write_bytes(path, bad[k].bytes, bad[k].n);
        idx_array a;
        int status = idx_read(path, bad[k].dims, &a, err, sizeof err);
        if (status == 0) idx_free(&a);
        expect_error(status, err, bad[k].part, bad[k].name);
        if (status != 0 && !strstr(err, path)) {
            printf("FAIL %s: the error does not name the file %s\n", bad[k].name, path);
            failures++;
        }
    }
    snprintf(path, sizeof path, "%s/no-such-file", dir);
    expect_error(idx_read(path, 3, &x, err, sizeof err), err, "cannot open IDX file", "missing file");

    /* Pairs that do not fit together. */
    unsigned char two[2] = {1, 2}, ten[N] = {1, 10, 2};
    uint32_t two_size[1] = {2};
    snprintf(path, sizeof path, "%s/two-labels-idx1-ubyte", dir);
    write_bytes(path, buf, idx_bytes(buf, 0x08, 1, two_size, two, 2));
    expect_error(idx_read_set(images, path, &x, &y, err, sizeof err), err, "has 3 images but", "count mismatch");
    expect_error(idx_read_set(images, path, &x, &y, err, sizeof err), err, "has 2 labels", "count mismatch (labels)");
    snprintf(path, sizeof path, "%s/ten-labels-idx1-ubyte", dir);
    write_bytes(path, buf, idx_bytes(buf, 0x08, 1, lsize, ten, N));
    expect_error(idx_read_set(images, path, &x, &y, err, sizeof err), err, "label 1 is 10; expected a digit 0..9", "label out of range");
    expect_error(idx_read_set(labels, labels, &x, &y, err, sizeof err), err, "has 1 dimension", "labels file as images");

    printf("%s: %d failure%s\n", failures ? "FAIL" : "idx_test OK", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}

/* The UCI digits as MNIST-shaped IDX files (for train.c --mnist without MNIST). */
static int mnist_like(const char *csv, const char *dir) {
    enum { MAX = 2000, TRAIN = 1500, SIDE = 28 };
    static unsigned char img[MAX * SIDE * SIDE], lab[MAX], buf[MAX * SIDE * SIDE + 16];
    FILE *f = fopen(csv, "r");
    if (!f) { fprintf(stderr, "idx_test: cannot open %s\n", csv); return 1; }
    char line[4096];
    int n = 0;
    while (n < MAX && fgets(line, sizeof line, f)) {
        int v[65], k = 0;
        char *s = line, *end;
        for (; k < 65; k++) {
            v[k] = (int)strtol(s, &end, 10);
            if (end == s) break;
            s = end + 1;
        }
        if (k != 65) { fprintf(stderr, "idx_test: %s line %d: expected 65 integers\n", csv, n + 1); return 1; }
        unsigned char *p = img + (size_t)n * SIDE * SIDE;
        memset(p, 0, SIDE * SIDE);
        for (int r = 0; r < 24; r++)
            for (int c = 0; c < 24; c++) p[(r + 2) * SIDE + c + 2] = (unsigned char)(v[(r / 3) * 8 + c / 3] * 255 / 16);
        lab[n++] = (unsigned char)v[64];
    }
    fclose(f);
    if (n <= TRAIN) { fprintf(stderr, "idx_test: %s has %d rows; expected more than %d\n", csv, n, TRAIN); return 1; }
    const char *names[2][2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"}, {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
    for (int part = 0; part < 2; part++) {
        int first = part ? TRAIN : 0, count = part ? n - TRAIN : TRAIN;
        uint32_t isize[3] = {(uint32_t)count, SIDE, SIDE}, lsize[1] = {(uint32_t)count};
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[part][0]);
        write_bytes(path, buf, idx_bytes(buf, 0x08, 3, isize, img + (size_t)first * SIDE * SIDE, (size_t)count * SIDE * SIDE));
        snprintf(path, sizeof path, "%s/%s", dir, names[part][1]);
        write_bytes(path, buf, idx_bytes(buf, 0x08, 1, lsize, lab + first, (size_t)count));
    }
    printf("wrote %s/{train,t10k}-*-ubyte: %d and %d UCI digits as 28x28 images\n", dir, TRAIN, n - TRAIN);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "check")) return check(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "mnist-like")) return mnist_like(argv[2], argv[3]);
    fprintf(stderr, "usage: %s check DIR | %s mnist-like DIGITS.csv DIR\n", argv[0], argv[0]);
    return 2;
}
