/* api_check.c: every entry point of a compiled Kiln library, its success and
 * its error paths, for running under AddressSanitizer + UndefinedBehaviorSanitizer
 * (and valgrind): NULL instances and pointers, bad sizes and indices, train
 * steps, save/load round trips, refused weight files (missing, empty, garbage,
 * truncated, bad checksum, another model's, another layout) that leave the
 * instance as it was, the removal of temporary files that killed saves left,
 * and the input check (set_check_inputs).
 *
 *   cc -I Runtime -I OUT -include OUT/NAME.h -DKILN_MODEL=NAME Tests/runtime/api_check.c -L OUT -lNAME -o api_check
 *   ./api_check SCRATCH_DIR
 *
 * Works on any model through kiln_entry(); with KILN_MODEL=NAME (and NAME.h
 * included) it also calls NAME_set_check_inputs and NAME_predict_v by name.
 * Prints "api_check OK" and exits 0 when every check holds. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln_test_util.h"

#ifdef KILN_MODEL
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define NAMED(f) CAT(KILN_MODEL, f)
#endif

static const kiln_api *api;
static const kiln_model_desc *d;

static int contains(const char *s, const char *part) { return s && strstr(s, part) != NULL; }

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static unsigned char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*size + 1);
    if (fread(b, 1, (size_t)*size, f) != (size_t)*size) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void write_file(const char *path, const void *b, long size) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (size > 0) fwrite(b, 1, (size_t)size, f);
    fclose(f);
}

/* Files in dir whose name starts with prefix. */
static int count_files(const char *dir, const char *prefix) {
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(dp);
    return n;
}

static void null_instance_checks(void) {
    float f = 0, loss = 0;
    const void *in[8] = {0};
    void *out[8] = {0};
    CHECK(api->create(NULL) == NULL, "create(NULL)");
    CHECK(contains(api->last_error(NULL), "NULL"), "create(NULL) error: %s", api->last_error(NULL));
    api->destroy(NULL);
#define REFUSED(call, what)                                                                       \
    do {                                                                                          \
        CHECK((call) == -1, "%s on a NULL instance returned success", what);                      \
        CHECK(contains(api->last_error(NULL), "NULL model instance"), "%s: %s", what, api->last_error(NULL)); \
    } while (0)
    REFUSED(api->predict(NULL, in, out, 1), "predict");
    REFUSED(api->predict_steps(NULL, in, out, 1, 1), "predict_steps");
    REFUSED(api->reserve(NULL, 10), "reserve");
    REFUSED(api->train_step(NULL, in, in, 1, &loss), "train_step");
    REFUSED(api->evaluate(NULL, in, in, 1, &loss), "evaluate");
    REFUSED(api->train_step_steps(NULL, in, in, 1, 1, &loss), "train_step_steps");
    REFUSED(api->evaluate_steps(NULL, in, in, 1, 1, &loss), "evaluate_steps");
    REFUSED(api->num_weights(NULL), "num_weights");
    REFUSED(api->get_weight(NULL, 0, &f, 1), "get_weight");
    REFUSED(api->set_weight(NULL, 0, &f, 1), "set_weight");
    REFUSED(api->save_weights(NULL, "x"), "save_weights");
    REFUSED(api->load_weights(NULL, "x"), "load_weights");
    REFUSED(api->iterations(NULL), "iterations");
    REFUSED(api->last_metrics(NULL, &f, 0), "last_metrics");
    REFUSED(api->set_num_threads(NULL, 1), "set_num_threads");
    REFUSED(api->set_check_inputs(NULL, 1), "set_check_inputs");
    api->set_seed(NULL, 1);
    CHECK(contains(api->last_error(NULL), "NULL model instance"), "set_seed: %s", api->last_error(NULL));
#undef REFUSED
}

static void argument_checks(kiln_instance *m, void **x, void **y, void **out, int64_t n, int64_t steps) {
    float loss;
    const void *none[8] = {0};
    CHECK(api->predict_steps(m, NULL, out, n, steps) == -1, "NULL input array");
    CHECK(contains(api->last_error(m), "input pointers is NULL"), "%s", api->last_error(m));
    CHECK(api->predict_steps(m, none, out, n, steps) == -1, "NULL input");
    CHECK(contains(api->last_error(m), "is a NULL pointer"), "%s", api->last_error(m));
    CHECK(api->predict_steps(m, (const void *const *)x, NULL, n, steps) == -1, "NULL output array");
    CHECK(api->predict_steps(m, (const void *const *)x, (void *const *)none, n, steps) == -1, "NULL output");
    CHECK(api->predict_steps(m, (const void *const *)x, out, -1, steps) == -1, "negative rows");
    CHECK(contains(api->last_error(m), "must not be negative"), "%s", api->last_error(m));
    CHECK(api->predict_steps(m, (const void *const *)x, out, 0, steps) == 0, "zero rows: %s", api->last_error(m));
    CHECK(api->last_error(m)[0] == '\0', "a successful call clears the error");
    if (d->free_steps) {
        CHECK(api->predict(m, (const void *const *)x, out, n) == -1, "a free-steps model needs the steps");
    } else {
        CHECK(api->predict_steps(m, (const void *const *)x, out, n, 5) == -1, "steps on a fixed model");
    }
    CHECK(api->reserve(m, -3) == -1, "negative reserve");
    CHECK(api->reserve(m, (int64_t)1 << 61) == -1, "absurd reserve is refused, not attempted");
    CHECK(api->last_error(m)[0] != '\0', "absurd reserve has an error");
    CHECK(api->set_num_threads(m, 65) == -1 && api->set_num_threads(m, -1) == -1, "thread counts");
    if (d->train) {
        CHECK(api->train_step_steps(m, (const void *const *)x, (const void *const *)y, 0, steps, &loss) == -1,
              "empty batch");
        CHECK(api->train_step_steps(m, (const void *const *)x, NULL, n, steps, &loss) == -1, "NULL targets");
        CHECK(contains(api->last_error(m), "target pointers is NULL"), "%s", api->last_error(m));
        CHECK(api->train_step_steps(m, (const void *const *)x, none, n, steps, &loss) == -1, "NULL target");
        CHECK(api->iterations(m) == 0, "refused steps take no step");
    } else {
        CHECK(api->train_step(m, (const void *const *)x, (const void *const *)y, n, &loss) == -1, "no training");
    }
    float w[4];
    CHECK(api->get_weight(m, -1, w, 1) == -1 && api->get_weight(m, d->num_weights, w, 1) == -1, "weight index");
    CHECK(contains(api->last_error(m), "out of range"), "%s", api->last_error(m));
    if (d->num_weights > 0) {
        CHECK(api->get_weight(m, 0, w, d->weights[0].count + 1) == -1, "weight count");
        CHECK(api->get_weight(m, 0, NULL, d->weights[0].count) == -1, "NULL weight buffer");
        CHECK(api->set_weight(m, 0, NULL, d->weights[0].count) == -1, "NULL weight source");
    }
    CHECK(api->last_metrics(m, w, d->num_metrics + 1) == -1, "metric count");
    CHECK(api->save_weights(m, NULL) == -1 && api->save_weights(m, "") == -1, "no save path");
    CHECK(api->load_weights(m, NULL) == -1 && api->load_weights(m, "") == -1, "no load path");
}

/* Each refused file leaves the weights and the step count of m as they were. */
static void refused_file(kiln_instance *m, const char *path, const void *bytes, long size, const char *expect) {
    uint64_t before = hash_weights(api, m);
    int64_t it = api->iterations(m);
    write_file(path, bytes, size);
    CHECK(api->load_weights(m, path) == -1, "'%s' (%ld bytes) was loaded", expect, size);
    CHECK(contains(api->last_error(m), expect), "expected '%s', got: %s", expect, api->last_error(m));
    CHECK(hash_weights(api, m) == before && api->iterations(m) == it, "a refused load changed the instance (%s)", expect);
}

static void file_checks(kiln_instance *m, void **x, void **y, int64_t n, int64_t steps, const char *dir) {
    char path[4096], other[4096];
    snprintf(path, sizeof path, "%s/w.kiln", dir);
    snprintf(other, sizeof other, "%s/bad.kiln", dir);
    float loss;
    for (int i = 0; i < 3 && d->train; i++)
        CHECK(api->train_step_steps(m, (const void *const *)x, (const void *const *)y, n, steps, &loss) == 0, "train: %s",
              api->last_error(m));
    api->set_seed(m, 42);
    CHECK(api->save_weights(m, path) == 0, "save: %s", api->last_error(m));
    CHECK(count_files(dir, "w.kiln.tmp.") == 0, "a save leaves no temporary file");
    uint64_t saved = hash_weights(api, m);
    int64_t saved_it = api->iterations(m);

    /* A round trip restores everything: a second instance continues bit-identically. */
    kiln_instance *m2 = api->create(d);
    CHECK(m2 && api->load_weights(m2, path) == 0, "load: %s", m2 ? api->last_error(m2) : api->last_error(NULL));
    CHECK(hash_weights(api, m2) == saved && api->iterations(m2) == saved_it, "round trip");
    for (int i = 0; i < 2 && d->train; i++) {
        float l1 = 0, l2 = 1;
        api->train_step_steps(m, (const void *const *)x, (const void *const *)y, n, steps, &l1);
        api->train_step_steps(m2, (const void *const *)x, (const void *const *)y, n, steps, &l2);
        CHECK(memcmp(&l1, &l2, 4) == 0, "training continues identically after a load (%g vs %g)", l1, l2);
    }
    CHECK(hash_weights(api, m) == hash_weights(api, m2), "the same weights after the same steps");
    api->destroy(m2);

    long size = 0;
    unsigned char *good = read_file(path, &size);
    CHECK(good && size > 64, "read the saved file");
    if (!good) return;
    unsigned char *bad = malloc((size_t)size + 16);
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none/w.kiln", dir);
    CHECK(api->load_weights(m, missing) == -1 && contains(api->last_error(m), "cannot open"), "missing: %s",
          api->last_error(m));
    refused_file(m, other, good, 0, "too short");
    uint64_t s = 7;
    for (long i = 0; i < size; i++) bad[i] = (unsigned char)rng_next(&s);
    refused_file(m, other, bad, size, "not a Kiln weights file");
    for (int k = 1; k < 8; k++) refused_file(m, other, good, size * k / 8, size * k / 8 < 56 ? "" : "truncated");
    refused_file(m, other, good, size - 1, "truncated");
    memcpy(bad, good, (size_t)size);
    bad[size] = 0;
    refused_file(m, other, bad, size + 1, "trailing bytes");
    memcpy(bad, good, (size_t)size);
    bad[size / 2] ^= 0x10;   /* inside the state */
    refused_file(m, other, bad, size, "checksum");
    memcpy(bad, good, (size_t)size);
    bad[size - 1] ^= 0x01;   /* the checksum itself */
    refused_file(m, other, bad, size, "checksum");
    memcpy(bad, good, (size_t)size);
    bad[40] ^= 0x01;         /* the layout hash: a model of the same name laid out otherwise */
    refused_file(m, other, bad, size, "laid out differently");
    memcpy(bad, good, (size_t)size);
    bad[48] ^= 0x20;         /* the first letter of the model name: another model's file */
    refused_file(m, other, bad, size, "holds the state of model");
    memcpy(bad, good, (size_t)size);
    bad[8] = 9;              /* a format from the future */
    refused_file(m, other, bad, size, "format 9");
    memcpy(bad, good, (size_t)size);
    bad[16] ^= 0x04;         /* the state size */
    refused_file(m, other, bad, size, "bytes of state");
    /* The good file still loads. */
    CHECK(api->load_weights(m, path) == 0 && hash_weights(api, m) == saved && api->iterations(m) == saved_it,
          "the good file loads: %s", api->last_error(m));

    /* Saving into a missing folder fails and writes nothing. */
    CHECK(api->save_weights(m, missing) == -1 && contains(api->last_error(m), "cannot write"), "save into missing: %s",
          api->last_error(m));

    /* Temporary files of killed saves: those of a dead process go at the next save
     * (also the old `path.tmp.<pid>` form); this process's and unrelated files stay. */
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char stale[4200], stale_old[4200], mine[4200], unrelated[4200], odd[4200];
    snprintf(stale, sizeof stale, "%s.tmp.%ld.3", path, (long)child);
    snprintf(stale_old, sizeof stale_old, "%s.tmp.%ld", path, (long)child);
    snprintf(mine, sizeof mine, "%s.tmp.%ld.999999", path, (long)getpid());
    snprintf(unrelated, sizeof unrelated, "%s/x.kiln.tmp.%ld.1", dir, (long)child);
    snprintf(odd, sizeof odd, "%s.tmp.%ldabc", path, (long)child);
    const char *made[] = {stale, stale_old, mine, unrelated, odd};
    for (int i = 0; i < 5; i++) write_file(made[i], good, 10);
    CHECK(api->save_weights(m, path) == 0, "save: %s", api->last_error(m));
    CHECK(file_size(stale) < 0 && file_size(stale_old) < 0, "stale temporary files of a dead process are removed");
    CHECK(file_size(mine) == 10 && file_size(unrelated) == 10 && file_size(odd) == 10, "other files stay");
    for (int i = 2; i < 5; i++) unlink(made[i]);
    unlink(other);
    unlink(path);
    free(bad);
    free(good);
}

static void set_check(kiln_instance *m, int on) {
#ifdef KILN_MODEL
    CHECK(NAMED(_set_check_inputs)((NAMED(_model) *)m, on) == 0, "NAME_set_check_inputs");
#else
    CHECK(api->set_check_inputs(m, on) == 0, "set_check_inputs");
#endif
}

static int predict(kiln_instance *m, void **x, void **out, int64_t n, int64_t steps) {
#ifdef KILN_MODEL
    if (!d->free_steps) return NAMED(_predict_v)((NAMED(_model) *)m, (const void *const *)x, (void *const *)out, n);
#endif
    return api->predict_steps(m, (const void *const *)x, (void *const *)out, n, steps);
}

static void input_checks(kiln_instance *m, void **x, void **y, void **out, int64_t n, int64_t steps) {
    int fi = -1;   /* the first f32 input */
    for (int i = 0; i < d->num_inputs && fi < 0; i++)
        if (d->inputs[i].dtype == KILN_F32) fi = i;
    if (fi < 0 || n < 6) return;
    float *v = x[fi];
    int64_t e = row_elems(&d->inputs[fi], steps);
    float keep = v[3 * e + 1];
    v[3 * e + 1] = NAN;
    CHECK(predict(m, x, out, n, steps) == 0, "off by default: %s", api->last_error(m));
    set_check(m, 1);
    char want[512];
    snprintf(want, sizeof want, "input '%s' row 3 holds NaN", d->inputs[fi].name);
    CHECK(predict(m, x, out, n, steps) == -1 && contains(api->last_error(m), want), "expected \"%s\", got: %s", want,
          api->last_error(m));
    v[3 * e + 1] = keep;
    v[5 * e] = -INFINITY;
    snprintf(want, sizeof want, "input '%s' row 5 holds -inf", d->inputs[fi].name);
    CHECK(predict(m, x, out, n, steps) == -1 && contains(api->last_error(m), want), "expected \"%s\", got: %s", want,
          api->last_error(m));
    v[5 * e] = keep;
    CHECK(predict(m, x, out, n, steps) == 0, "finite inputs pass: %s", api->last_error(m));
    if (d->train) {
        uint64_t w = hash_weights(api, m);
        int64_t it = api->iterations(m);
        float loss;
        v[2 * e] = INFINITY;
        snprintf(want, sizeof want, "input '%s' row 2 holds inf", d->inputs[fi].name);
        CHECK(api->train_step_steps(m, (const void *const *)x, (const void *const *)y, n, steps, &loss) == -1 &&
              contains(api->last_error(m), want), "expected \"%s\", got: %s", want, api->last_error(m));
        v[2 * e] = keep;
        if (d->targets[0].dtype == KILN_F32) {
            float *t = y[0];
            int64_t te = row_elems(&d->targets[0], steps);
            float k2 = t[4 * te];
            t[4 * te] = NAN;
            snprintf(want, sizeof want, "target '%s' row 4 holds NaN", d->targets[0].name);
            CHECK(api->train_step_steps(m, (const void *const *)x, (const void *const *)y, n, steps, &loss) == -1 &&
                  contains(api->last_error(m), want), "expected \"%s\", got: %s", want, api->last_error(m));
            CHECK(api->evaluate_steps(m, (const void *const *)x, (const void *const *)y, n, steps, &loss) == -1,
                  "evaluate checks targets too");
            t[4 * te] = k2;
        }
        CHECK(hash_weights(api, m) == w && api->iterations(m) == it, "a refused step changes nothing");
    }
    set_check(m, 0);
    v[3 * e] = NAN;
    CHECK(predict(m, x, out, n, steps) == 0, "off again: %s", api->last_error(m));
    v[3 * e] = keep;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    api = kiln_entry();
    CHECK(api && api->abi_version == KILN_ABI_VERSION && api->struct_size == (int32_t)sizeof(kiln_api), "the table");
    d = api->desc;
    null_instance_checks();
    kiln_instance *m = api->create(d);
    if (!m) {
        fprintf(stderr, "create: %s\n", api->last_error(NULL));
        return 1;
    }
    int64_t steps = test_steps(d), n = 8;
    void **x = make_tensors(d->inputs, d->num_inputs, n, steps, 1, 0);
    void **y = d->train ? make_tensors(d->targets, d->num_outputs, n, steps, 2, 1) : NULL;
    void **out = make_outputs(d, n, steps);
    CHECK(api->predict_steps(m, (const void *const *)x, out, n, steps) == 0, "predict: %s", api->last_error(m));
    argument_checks(m, x, y, out, n, steps);
    /* Rows beyond the reserved capacity run in chunks; a larger batch grows the training arena. */
    CHECK(api->reserve(m, 3) == 0, "reserve: %s", api->last_error(m));
    CHECK(api->predict_steps(m, (const void *const *)x, out, n, steps) == 0, "predict in chunks: %s", api->last_error(m));
    file_checks(m, x, y, n, steps, argv[1]);
    input_checks(m, x, y, out, n, steps);
    if (d->num_metrics > 0 && d->train) {
        float mt[16], loss;
        CHECK(api->evaluate_steps(m, (const void *const *)x, (const void *const *)y, n, steps, &loss) == 0, "evaluate");
        CHECK(api->last_metrics(m, mt, d->num_metrics) == 0, "metrics: %s", api->last_error(m));
    }
    api->destroy(m);
    free_tensors(x, d->num_inputs);
    free_tensors(y, d->num_outputs);
    free_tensors(out, d->num_outputs);
    if (test_failures) {
        fprintf(stderr, "api_check: %d check(s) failed\n", test_failures);
        return 1;
    }
    printf("api_check OK (model %s)\n", d->name);
    return 0;
}
