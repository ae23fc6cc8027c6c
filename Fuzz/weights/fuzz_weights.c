/* libFuzzer target: the C runtime's weights-file loader (kiln_load_weights), on the
 * hand-written model of Tests/Fixtures/fake_model.c (what `kiln compile` emits, for a
 * 3 -> 2 dense layer). Each input is written to a memory file and loaded; a load that
 * fails must leave the instance's weights as they were, one that succeeds must give a
 * model that still predicts. FUZZ_WEIGHTS_SEED=PATH writes a valid weights file to PATH
 * (a seed) and exits. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include "kiln_runtime.h"
#include "../../Tests/Fixtures/fake_model.c"

static const kiln_tensor_desc in_desc[1] = {{"x", KILN_F32, 2, {-1, 3}}};
static const kiln_tensor_desc out_desc[1] = {{"y", KILN_F32, 2, {-1, 2}}};
static const kiln_weight_desc w_desc[2] = {
    {"dense/kernel", 2, {3, 2}, 0, 6, 1},
    {"dense/bias", 1, {2}, 24, 2, 1},
};
static kiln_model_desc desc;
static kiln_instance *inst;
static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    desc.abi_version = KILN_ABI_VERSION;
    desc.name = "fake";
    desc.num_inputs = 1; desc.num_outputs = 1; desc.num_weights = 2;
    desc.inputs = in_desc; desc.outputs = out_desc; desc.targets = out_desc; desc.weights = w_desc;
    desc.state_bytes = 32;
    desc.init_state = (const unsigned char *)fake__init_state;
    desc.init_state_bytes = 32;
    desc.predict_arena_per_sample = 8;
    desc.train_arena_per_sample = 8; desc.train_arena_fixed = 32;
    desc.predict = fake__predict; desc.train = fake__train; desc.evaluate = fake__evaluate;
    desc.loss = "mean_squared_error"; desc.optimizer = "SGD";
    inst = kiln_create(&desc);
    if (!inst) { fprintf(stderr, "fuzz_weights: kiln_create failed: %s\n", kiln_last_error(NULL)); abort(); }
    const char *seed = getenv("FUZZ_WEIGHTS_SEED");
    if (seed) {
        if (kiln_save_weights(inst, seed) != 0) { fprintf(stderr, "%s\n", kiln_last_error(inst)); exit(1); }
        exit(0);
    }
    fd = memfd_create("kiln-fuzz-weights", 0);
    if (fd < 0) { perror("memfd_create"); abort(); }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    float before[8], after[8];
    kiln_get_weight(inst, 0, before, 6);
    kiln_get_weight(inst, 1, before + 6, 2);
    int rc = kiln_load_weights(inst, path);
    /* Refused: one message (read before the next call clears it), and the weights untouched. */
    if (rc != 0 && !kiln_last_error(inst)[0]) abort();
    kiln_get_weight(inst, 0, after, 6);
    kiln_get_weight(inst, 1, after + 6, 2);
    if (rc != 0) {
        if (memcmp(before, after, sizeof before) != 0) abort();
    } else {
        float x[3] = {1, 2, 3}, y[2];
        const void *ins[1] = {x};
        void *outs[1] = {y};
        if (kiln_predict(inst, ins, outs, 1) != 0) abort();
        /* Back to the initial weights for the next input. */
        kiln_set_weight(inst, 0, fake__init_state, 6);
        kiln_set_weight(inst, 1, fake__init_state + 6, 2);
    }
    return 0;
}
