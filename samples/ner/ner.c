/* A BiLSTM-CRF named-entity tagger trained and used from C through the library Kiln
 * compiles from samples/ner/ner.keras.
 *
 *   kiln compile samples/ner/ner.keras -o OUT
 *   cc -std=c99 -I OUT samples/ner/ner.c -L OUT -lner -lm -Wl,-rpath,OUT -o OUT/ner
 *   OUT/ner DATA [--epochs E] [--batch B] [--seed S] [--min-f1 F]
 *
 * DATA holds train_x.npy, train_y.npy, test_x.npy, test_y.npy (int32 token and tag ids,
 * sentences x 16, padded with 0), tags.txt (line k: the tag of id k-1, "O" first) and
 * optionally vocab.txt (line k: the word of id k-1), as `kiln vectors` writes them.
 *
 * Trains with ner_train_step on shuffled batches for E epochs, predicts the held-out
 * sentences' tags (the CRF's Viterbi path) with ner_predict, prints entity-level
 * precision, recall and F1 (BIO spans, exact match, as conlleval counts them) overall and
 * per entity type, and exits 1 if F1 is below F (default 0.9).
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ner.h"

#define STEPS 16      /* the model's Input((16,)) */
#define MAX_TAGS 64

/* ---------------------------------------------------------------- reading the data */

/* A 2-D .npy file of int32 or int64 values (little-endian, C order), as int32.
 * Returns NULL after printing one sentence that names the file and the problem. */
static int32_t *read_ids(const char *path, int64_t *rows, int64_t *cols) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "ner: cannot open %s\n", path); return NULL; }
    unsigned char pre[12];
    char *header = NULL;
    void *raw = NULL;
    int32_t *ids = NULL;
    size_t hlen, width;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        fprintf(stderr, "ner: %s is not a .npy file\n", path);
        goto done;
    }
    if (pre[6] == 1) {
        hlen = pre[8] | (size_t)pre[9] << 8;
    } else {
        if (fread(pre + 10, 1, 2, f) != 2) goto truncated;
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    header = calloc(hlen + 1, 1);
    if (!header) goto done;
    if (fread(header, 1, hlen, f) != hlen) goto truncated;
    for (size_t k = hlen; k > 0 && (header[k - 1] == ' ' || header[k - 1] == '\n'); k--) header[k - 1] = 0;
    if (strstr(header, "'descr': '<i4'")) width = 4;
    else if (strstr(header, "'descr': '<i8'")) width = 8;
    else {
        fprintf(stderr, "ner: %s: expected little-endian int32 or int64 ids, found %s\n", path, header);
        goto done;
    }
    if (!strstr(header, "'fortran_order': False")) {
        fprintf(stderr, "ner: %s: expected an array in C order\n", path);
        goto done;
    }
    const char *s = strstr(header, "'shape': (");
    int used = 0;   /* set only when the closing parenthesis follows the two sizes */
    if (!s || sscanf(s, "'shape': (%" SCNd64 ", %" SCNd64 ")%n", rows, cols, &used) != 2 || !used
        || *rows < 0 || *cols < 0) {
        fprintf(stderr, "ner: %s: expected a 2-D array (sentences, steps), found %s\n", path, header);
        goto done;
    }
    size_t count = (size_t)(*rows * *cols);
    raw = malloc(count * width + 1);
    ids = malloc(count * sizeof(int32_t) + 1);
    if (!raw || !ids) { fprintf(stderr, "ner: out of memory reading %s\n", path); free(ids); ids = NULL; goto done; }
    if (fread(raw, width, count, f) != count) { free(ids); ids = NULL; goto truncated; }
    for (size_t i = 0; i < count; i++) {
        int64_t v = width == 4 ? (int64_t)((int32_t *)raw)[i] : ((int64_t *)raw)[i];
        if (v < 0 || v > INT32_MAX) {
            fprintf(stderr, "ner: %s: value %" PRId64 " at position %zu is not an id\n", path, v, i);
            free(ids);
            ids = NULL;
            goto done;
        }
        ids[i] = (int32_t)v;
    }
    goto done;
truncated:
    fprintf(stderr, "ner: %s is truncated\n", path);
done:
    free(raw);
    free(header);
    fclose(f);
    return ids;
}

/* Lines of a text file (without their newline); NULL after printing why. */
static char **read_lines(const char *path, int *count, int required) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (required) fprintf(stderr, "ner: cannot open %s\n", path);
        return NULL;
    }
    char **lines = NULL, buf[512];
    int n = 0, cap = 0;
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\r\n")] = 0;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(lines, (size_t)cap * sizeof *lines);
            if (!grown) { fprintf(stderr, "ner: out of memory reading %s\n", path); exit(1); }
            lines = grown;
        }
        lines[n] = malloc(strlen(buf) + 1);
        if (!lines[n]) { fprintf(stderr, "ner: out of memory reading %s\n", path); exit(1); }
        strcpy(lines[n++], buf);
    }
    fclose(f);
    *count = n;
    return lines;
}

/* ---------------------------------------------------------------- entities */

/* A tag id's entity: kind 'B', 'I' or 'O' and the index of its type in types[]. */
typedef struct { char kind; int type; } TagInfo;

typedef struct { int type, start, end; } Span;

/* The spans of a BIO tag sequence, counted as conlleval and seqeval do: a span starts at
 * B-X, or at I-X that does not continue a span of type X; it ends before O, B-, or a tag
 * of another type. Returns the number of spans written to out (at most len). */
static int spans_of(const int32_t *tags, int len, const TagInfo *info, Span *out) {
    int n = 0, open = 0, type = -1, start = 0;
    for (int i = 0; i <= len; i++) {
        TagInfo t = i < len ? info[tags[i]] : (TagInfo){'O', -1};
        if (open && (t.kind == 'O' || t.kind == 'B' || t.type != type)) {
            out[n++] = (Span){type, start, i};
            open = 0;
        }
        if (t.kind != 'O' && !open) {
            open = 1;
            type = t.type;
            start = i;
        }
    }
    return n;
}

static void report(const char *name, long tp, long predicted, long truth) {
    double p = predicted ? (double)tp / predicted : 0.0, r = truth ? (double)tp / truth : 0.0;
    double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0.0;
    printf("  %-8s precision %.3f  recall %.3f  F1 %.3f  (%ld entities, %ld predicted, %ld right)\n",
           name, p, r, f1, truth, predicted, tp);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* xorshift64*: the shuffling of the training sentences. */
static uint64_t next_random(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* ---------------------------------------------------------------- main */

static void usage(const char *prog) {
    fprintf(stderr, "usage: %s DATA [--epochs E] [--batch B] [--seed S] [--min-f1 F]\n", prog);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') usage(argv[0]);
    const char *data = argv[1];
    int epochs = 8, batch = 32;
    unsigned long long seed = 1;
    double min_f1 = 0.9;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) usage(argv[0]);
        char *end;
        const char *opt = argv[i], *val = argv[++i];
        if (!strcmp(opt, "--epochs")) epochs = (int)strtol(val, &end, 10);
        else if (!strcmp(opt, "--batch")) batch = (int)strtol(val, &end, 10);
        else if (!strcmp(opt, "--seed")) seed = strtoull(val, &end, 10);
        else if (!strcmp(opt, "--min-f1")) min_f1 = strtod(val, &end);
        else usage(argv[0]);
        if (*end || epochs < 1 || batch < 1 || seed == 0) {
            fprintf(stderr, "ner: %s %s: expected a positive number\n", opt, val);
            return 2;
        }
    }

    /* the arrays and the tags */
    char path[4096];
    int64_t nx, tx, ny, ty, mx, sx, my, sy;
    int32_t *x, *y, *test_x, *test_y;
    snprintf(path, sizeof path, "%s/train_x.npy", data);
    if (!(x = read_ids(path, &nx, &tx))) return 1;
    snprintf(path, sizeof path, "%s/train_y.npy", data);
    if (!(y = read_ids(path, &ny, &ty))) return 1;
    snprintf(path, sizeof path, "%s/test_x.npy", data);
    if (!(test_x = read_ids(path, &mx, &sx))) return 1;
    snprintf(path, sizeof path, "%s/test_y.npy", data);
    if (!(test_y = read_ids(path, &my, &sy))) return 1;
    if (nx != ny || tx != ty || mx != my || sx != sy || tx != STEPS || sx != STEPS || nx == 0 || mx == 0) {
        fprintf(stderr, "ner: expected token and tag arrays of equal shapes (sentences, %d); found train "
                "(%" PRId64 ", %" PRId64 ") and (%" PRId64 ", %" PRId64 "), test (%" PRId64 ", %" PRId64
                ") and (%" PRId64 ", %" PRId64 ")\n", STEPS, nx, tx, ny, ty, mx, sx, my, sy);
        return 1;
    }
    int ntags = 0, nwords = 0;
    snprintf(path, sizeof path, "%s/tags.txt", data);
    char **tags = read_lines(path, &ntags, 1);
    if (!tags) return 1;
    if (ntags < 1 || ntags > MAX_TAGS || strcmp(tags[0], "O") != 0) {
        fprintf(stderr, "ner: %s: expected 1 to %d tags, one per line, the first 'O'\n", path, MAX_TAGS);
        return 1;
    }
    snprintf(path, sizeof path, "%s/vocab.txt", data);
    char **words = read_lines(path, &nwords, 0);   /* only for printing examples */

    /* each tag's kind and entity type */
    TagInfo info[MAX_TAGS];
    const char *types[MAX_TAGS];
    int ntypes = 0;
    for (int k = 0; k < ntags; k++) {
        const char *t = tags[k];
        if (k == 0) { info[k] = (TagInfo){'O', -1}; continue; }
        if ((t[0] != 'B' && t[0] != 'I') || t[1] != '-' || !t[2]) {
            fprintf(stderr, "ner: tags.txt, line %d: '%s' is not a BIO tag (B-TYPE or I-TYPE)\n", k + 1, t);
            return 1;
        }
        int j = 0;
        while (j < ntypes && strcmp(types[j], t + 2) != 0) j++;
        if (j == ntypes) types[ntypes++] = t + 2;
        info[k] = (TagInfo){t[0], j};
    }
    for (int64_t i = 0; i < ny * ty; i++)
        if (y[i] >= ntags) { fprintf(stderr, "ner: train_y.npy holds tag id %d; tags.txt has %d tags\n", y[i], ntags); return 1; }
    for (int64_t i = 0; i < my * sy; i++)
        if (test_y[i] >= ntags) { fprintf(stderr, "ner: test_y.npy holds tag id %d; tags.txt has %d tags\n", test_y[i], ntags); return 1; }

    /* the model */
    ner_model *m = ner_create();
    if (!m) { fprintf(stderr, "ner: %s\n", ner_last_error(NULL)); return 1; }
    if (ner_reserve(m, batch > mx ? batch : mx) != 0) { fprintf(stderr, "ner: %s\n", ner_last_error(m)); return 1; }
    printf("training on %" PRId64 " sentences, %d epochs of batches of %d; %d tags\n", nx, epochs, batch, ntags);

    /* training: shuffled batches, one ner_train_step each */
    int64_t *order = malloc((size_t)nx * sizeof *order);
    int32_t *bx = malloc((size_t)batch * STEPS * sizeof *bx), *by = malloc((size_t)batch * STEPS * sizeof *by);
    int32_t *pred = malloc((size_t)mx * STEPS * sizeof *pred);
    if (!order || !bx || !by || !pred) { fprintf(stderr, "ner: out of memory\n"); return 1; }
    for (int64_t i = 0; i < nx; i++) order[i] = i;
    uint64_t state = seed;
    double first_loss = 0, last_loss = 0, t0 = now();
    for (int e = 0; e < epochs; e++) {
        for (int64_t i = nx - 1; i > 0; i--) {
            int64_t j = (int64_t)(next_random(&state) % (uint64_t)(i + 1)), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double sum = 0;
        for (int64_t b = 0; b < nx; b += batch) {
            int64_t rows = nx - b < batch ? nx - b : batch;
            for (int64_t r = 0; r < rows; r++) {
                memcpy(bx + r * STEPS, x + order[b + r] * STEPS, STEPS * sizeof *bx);
                memcpy(by + r * STEPS, y + order[b + r] * STEPS, STEPS * sizeof *by);
            }
            float loss;
            if (ner_train_step(m, bx, by, rows, &loss) != 0) { fprintf(stderr, "ner: %s\n", ner_last_error(m)); return 1; }
            sum += (double)loss * rows;
        }
        last_loss = sum / nx;
        if (e == 0) first_loss = last_loss;
        printf("epoch %2d  loss %.4f\n", e + 1, last_loss);
    }
    printf("trained in %.2f s (loss %.3f -> %.3f)\n", now() - t0, first_loss, last_loss);

    /* held-out sentences: Viterbi tags, then entity scores */
    if (ner_predict(m, test_x, pred, mx) != 0) { fprintf(stderr, "ner: %s\n", ner_last_error(m)); return 1; }
    long tp[MAX_TAGS] = {0}, npred[MAX_TAGS] = {0}, ntrue[MAX_TAGS] = {0};
    Span want[STEPS], got[STEPS];
    for (int64_t i = 0; i < mx; i++) {
        const int32_t *tok = test_x + i * STEPS, *p = pred + i * STEPS, *t = test_y + i * STEPS;
        int len = 0;
        while (len < STEPS && tok[len] != 0) len++;
        for (int s = 0; s < STEPS; s++) {
            if (p[s] < 0 || p[s] >= ntags || (s >= len && p[s] != 0)) {
                fprintf(stderr, "ner: sentence %" PRId64 ", step %d: predicted tag %d (tags 0..%d, padding 0)\n",
                        i, s, p[s], ntags - 1);
                return 1;
            }
        }
        int nw = spans_of(t, len, info, want), ng = spans_of(p, len, info, got);
        for (int a = 0; a < nw; a++) ntrue[want[a].type]++;
        for (int b = 0; b < ng; b++) {
            npred[got[b].type]++;
            for (int a = 0; a < nw; a++)
                if (got[b].type == want[a].type && got[b].start == want[a].start && got[b].end == want[a].end)
                    tp[got[b].type]++;
        }
        if (i < 3 && words) {   /* a few tagged sentences */
            printf("  ");
            for (int s = 0; s < len; s++) {
                const char *w = tok[s] < nwords ? words[tok[s]] : "?";
                TagInfo ti = info[p[s]];
                int opens = ti.kind == 'B' || (ti.kind == 'I' && (s == 0 || info[p[s - 1]].type != ti.type));
                int closes = ti.kind != 'O' && (s + 1 == len || info[p[s + 1]].kind != 'I' || info[p[s + 1]].type != ti.type);
                printf("%s%s%s%s%s", s ? " " : "", opens ? "[" : "", opens ? types[ti.type] : "", opens ? " " : "", w);
                if (closes) printf("]");
            }
            printf("\n");
        }
    }
    long all_tp = 0, all_pred = 0, all_true = 0;
    printf("held-out entities (%" PRId64 " sentences):\n", mx);
    for (int k = 0; k < ntypes; k++) {
        report(types[k], tp[k], npred[k], ntrue[k]);
        all_tp += tp[k];
        all_pred += npred[k];
        all_true += ntrue[k];
    }
    report("all", all_tp, all_pred, all_true);
    double p = all_pred ? (double)all_tp / all_pred : 0, r = all_true ? (double)all_tp / all_true : 0;
    double f1 = p + r > 0 ? 2 * p * r / (p + r) : 0;
    ner_destroy(m);
    if (f1 < min_f1) {
        printf("FAIL: entity F1 %.3f is below %.2f\n", f1, min_f1);
        return 1;
    }
    printf("OK: entity F1 %.3f >= %.2f\n", f1, min_f1);
    return 0;
}
