/* idx.h: a reader for the IDX files MNIST comes in (train-images-idx3-ubyte,
 * train-labels-idx1-ubyte, t10k-...), for the CNN-LSTM sample.
 *
 * An IDX file is a 4-byte magic number (0, 0, the element type, the number
 * of dimensions), one big-endian 32-bit size per dimension, then the
 * elements in row-major order. MNIST's are unsigned bytes (type 0x08):
 * images with 3 dimensions (count, rows, columns), labels with 1 (count).
 *
 * idx_read() checks all of it against the file's length and, on error,
 * fills `err` with one sentence naming the file and what was expected.
 */
#ifndef CNN_LSTM_IDX_H
#define CNN_LSTM_IDX_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_ERR_LEN 3072   /* room for two paths of up to 1024 bytes and the sentence */

typedef struct {
    int dims;              /* 1 (labels) or 3 (images) */
    uint32_t size[3];      /* count, then rows and columns for images */
    unsigned char *data;   /* size[0] * size[1] * size[2] bytes (malloc'd) */
} idx_array;

static const char *idx_type_name(int type) {
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "16-bit integer";
    case 0x0C: return "32-bit integer";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
    }
}

static void idx_free(idx_array *a) {
    free(a->data);
    a->data = NULL;
}

/* Reads `path`, an IDX file of unsigned bytes with `want_dims` dimensions
 * (3 for images, 1 for labels). Returns 0, or -1 with `err` filled and
 * nothing allocated. */
static int idx_read(const char *path, int want_dims, idx_array *out, char *err, size_t errlen) {
    const char *what = want_dims == 3 ? "images (count, rows, columns)" : "labels (count)";
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open IDX file %s: %s.", path, strerror(errno));
        return -1;
    }
    long length = -1;
    if (fseek(f, 0, SEEK_END) == 0) length = ftell(f);
    if (length < 0 || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot read IDX file %s: it is not a regular file.", path);
        fclose(f);
        return -1;
    }
    unsigned char magic[4];
    if (length < 4 || fread(magic, 1, 4, f) != 4) {
        snprintf(err, errlen, "%s is not an IDX file: it has %ld bytes, fewer than the 4 of the magic number.", path, length);
        fclose(f);
        return -1;
    }
    if (magic[0] == 0x1f && magic[1] == 0x8b) {
        snprintf(err, errlen, "%s is gzip-compressed; decompress it first (gunzip -k %s), or give run.sh the folder, which does.", path, path);
        fclose(f);
        return -1;
    }
    if (magic[0] != 0 || magic[1] != 0) {
        snprintf(err, errlen, "%s is not an IDX file: its magic number starts with bytes 0x%02x 0x%02x, not 0x00 0x00.", path, magic[0], magic[1]);
        fclose(f);
        return -1;
    }
    if (magic[2] != 0x08) {
        snprintf(err, errlen, "%s holds %s elements (type 0x%02x); MNIST's IDX files hold unsigned bytes (type 0x08).",
                 path, idx_type_name(magic[2]), magic[2]);
        fclose(f);
        return -1;
    }
    if (magic[3] != want_dims) {
        snprintf(err, errlen, "%s has %d dimension%s; %s have %d (is it the %s file?).", path, magic[3], magic[3] == 1 ? "" : "s",
                 what, want_dims, want_dims == 3 ? "labels" : "images");
        fclose(f);
        return -1;
    }
    long header = 4 + 4L * want_dims;
    unsigned char sizes[12];
    if (length < header || fread(sizes, 4, (size_t)want_dims, f) != (size_t)want_dims) {
        snprintf(err, errlen, "%s is truncated: its header needs %ld bytes, the file has %ld.", path, header, length);
        fclose(f);
        return -1;
    }
    uint64_t total = 1;
    for (int d = 0; d < want_dims; d++) {
        const unsigned char *b = sizes + 4 * d;
        out->size[d] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (out->size[d] == 0) {
            snprintf(err, errlen, "%s declares size 0 for dimension %d of its %s.", path, d + 1, what);
            fclose(f);
            return -1;
        }
        total *= out->size[d];
    }
    for (int d = want_dims; d < 3; d++) out->size[d] = 1;
    out->dims = want_dims;
    if ((uint64_t)(length - header) != total) {
        if ((uint64_t)(length - header) < total) {
            snprintf(err, errlen, "%s is truncated: its header declares %llu bytes of data, the file holds %ld.", path,
                     (unsigned long long)total, length - header);
        } else {
            uint64_t extra = (uint64_t)(length - header) - total;
            snprintf(err, errlen, "%s has %llu byte%s after the %llu bytes of data its header declares; is it an IDX file of MNIST?",
                     path, (unsigned long long)extra, extra == 1 ? "" : "s", (unsigned long long)total);
        }
        fclose(f);
        return -1;
    }
    out->data = malloc(total);
    if (!out->data || fread(out->data, 1, total, f) != total) {
        snprintf(err, errlen, "cannot read the %llu bytes of data of %s.", (unsigned long long)total, path);
        idx_free(out);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

/* Reads an images file and its labels file: as many labels as images, each
 * a digit 0..9. Returns 0, or -1 with `err` filled and nothing allocated. */
static int idx_read_set(const char *images, const char *labels, idx_array *x, idx_array *y, char *err, size_t errlen) {
    if (idx_read(images, 3, x, err, errlen) != 0) return -1;
    if (idx_read(labels, 1, y, err, errlen) != 0) {
        idx_free(x);
        return -1;
    }
    if (x->size[0] != y->size[0]) {
        snprintf(err, errlen, "%s has %u images but %s has %u labels; they must be a pair (train- or t10k-).",
                 images, x->size[0], labels, y->size[0]);
        idx_free(x);
        idx_free(y);
        return -1;
    }
    for (uint32_t i = 0; i < y->size[0]; i++) {
        if (y->data[i] > 9) {
            snprintf(err, errlen, "%s: label %u is %u; expected a digit 0..9.", labels, i, y->data[i]);
            idx_free(x);
            idx_free(y);
            return -1;
        }
    }
    return 0;
}

#endif
