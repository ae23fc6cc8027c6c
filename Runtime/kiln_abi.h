/* kiln_abi.h: the contract between code that `kiln compile` generates and the
 * thin C runtime linked into every libNAME.so.
 *
 * Generated code (LLVM object) exports, per model NAME:
 *   void  NAME__predict(float *arena, float *state, const void *const *inputs,
 *                       void *const *outputs, int64_t n, int64_t steps);
 *   float NAME__train(float *arena, float *state, const void *const *inputs,
 *                     int64_t n, const kiln_step_info *info);       (optional)
 *   float NAME__evaluate(float *arena, float *state, const void *const *inputs,
 *                        int64_t n, const kiln_step_info *info);    (optional)
 *   const unsigned char NAME__init_state[];  initial state image (state_bytes)
 *
 * The generated glue C file (also written by `kiln compile`) defines the
 * static kiln_model_desc for NAME and the public NAME_* functions declared in
 * NAME.h, each a one-line call into the runtime.
 *
 * Memory: `state` holds weights (in Keras get_weights() order), then
 * optimizer slots; it belongs to the instance. `arena` is scratch for one
 * call, 64-byte aligned: arena_per_row_step * n * steps + arena_per_sample * n
 * + arena_per_step * steps + arena_fixed bytes. `steps` is the number of time
 * steps T of a model whose inputs have a free (None) time axis (axis 1); it is
 * 1 for other models.
 * `inputs` for predict: the model inputs; for train/evaluate: the model
 * inputs followed by the targets (one per output). Every pointer points to
 * row-major data of the declared dtype with n rows.
 */
#ifndef KILN_ABI_H
#define KILN_ABI_H
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_ABI_VERSION 1
#define KILN_MAX_RANK 8
#define KILN_MAX_THREADS 64

typedef enum { KILN_F32 = 0, KILN_I32 = 1 } kiln_dtype;

/* A tensor as seen from outside: shape uses -1 for the batch dimension (and
 * any other free dimension). */
typedef struct {
    const char *name;
    int32_t dtype;                 /* kiln_dtype */
    int32_t rank;
    int64_t shape[KILN_MAX_RANK];
} kiln_tensor_desc;

/* One weight in get_weights() order: where it sits in the state block. */
typedef struct {
    const char *name;              /* e.g. "dense_1/kernel" */
    int32_t rank;
    int64_t shape[KILN_MAX_RANK];
    int64_t offset;                /* byte offset into state */
    int64_t count;                 /* number of float32 elements */
    int32_t trainable;
} kiln_weight_desc;

/* Per-step values the runtime passes to train/evaluate. */
typedef struct {
    int64_t iteration;             /* optimizer steps taken before this one */
    uint64_t seed;                 /* dropout RNG seed for this step */
    float *metrics;                /* where the step writes its metric values (num_metrics floats; batch means) */
    int64_t steps;                 /* the number of time steps T (1 without a free time axis) */
    int64_t reserved[4];
} kiln_step_info;

typedef void (*kiln_predict_fn)(float *arena, float *state, const void *const *inputs,
                                void *const *outputs, int64_t n, int64_t steps);
typedef float (*kiln_train_fn)(float *arena, float *state, const void *const *inputs,
                               int64_t n, const kiln_step_info *info);

typedef struct kiln_model_desc {
    int32_t abi_version;           /* KILN_ABI_VERSION */
    const char *name;              /* NAME */
    int32_t num_inputs, num_outputs, num_weights;
    const kiln_tensor_desc *inputs;
    const kiln_tensor_desc *outputs;
    const kiln_tensor_desc *targets;    /* one per output; NULL if no training */
    const kiln_weight_desc *weights;
    int64_t state_bytes;                /* weights + optimizer slots */
    const unsigned char *init_state;    /* init_state_bytes bytes (the rest of the state is zeros) */
    int64_t predict_arena_per_sample, predict_arena_fixed;   /* bytes */
    int64_t train_arena_per_sample, train_arena_fixed;       /* bytes */
    kiln_predict_fn predict;
    kiln_train_fn train;                /* NULL if the model cannot train */
    kiln_train_fn evaluate;             /* NULL if the model cannot train */
    const char *loss;                   /* e.g. "mean_squared_error" */
    const char *optimizer;              /* e.g. "SGD" */
    int32_t num_metrics;                /* metrics a train/evaluate step reports (e.g. accuracy) */
    const char *const *metric_names;    /* their Keras history names */
    int64_t init_state_bytes;           /* bytes of init_state; the rest of the state starts at zero */
    int32_t free_steps;                 /* 1: the inputs' axis 1 (time) is free; calls give the steps */
    int64_t predict_arena_per_row_step, predict_arena_per_step;   /* bytes, see above */
    int64_t train_arena_per_row_step, train_arena_per_step;
    /* Stateful recurrent layers (Keras' stateful=True): the state they carry from one call to
     * the next lives in the state block, num_carried ranges of (offset, bytes) in `carried`;
     * zero at creation and after reset_states. Such a model runs batches of exactly
     * fixed_batch rows (the Input's batch_shape); fixed_batch is 0 for other models. */
    int64_t fixed_batch;
    int32_t num_carried;
    const int64_t *carried;
} kiln_model_desc;

/* The generic, name-free entry: every libNAME.so exports
 *   const kiln_api *kiln_entry(void);
 * and its named twin NAME_describe(). The kiln_api table (below) carries the
 * model's kiln_model_desc and the runtime functions that work on it; the
 * NAME_* functions in NAME.h are thin wrappers over the same runtime. */
typedef struct kiln_instance kiln_instance;

/* The describe-and-call table a loader finds through dlsym("kiln_entry").
 * Functions returning int give 0 on success and -1 on error (then
 * last_error(inst) holds one sentence); create returns NULL on error (then
 * last_error(NULL) holds it). Fields are only ever appended; a loader checks
 * abi_version and that struct_size covers the fields it uses. */
typedef struct kiln_api {
    int32_t abi_version;                /* KILN_ABI_VERSION */
    int32_t struct_size;                /* sizeof(kiln_api) in the library */
    const kiln_model_desc *desc;
    kiln_instance *(*create)(const kiln_model_desc *desc);
    void (*destroy)(kiln_instance *inst);
    int (*predict)(kiln_instance *inst, const void *const *inputs,
                   void *const *outputs, int64_t n);
    int (*reserve)(kiln_instance *inst, int64_t rows);
    int (*train_step)(kiln_instance *inst, const void *const *x,
                      const void *const *y, int64_t n, float *loss);
    int (*evaluate)(kiln_instance *inst, const void *const *x,
                    const void *const *y, int64_t n, float *loss);
    int64_t (*num_weights)(const kiln_instance *inst);
    int (*get_weight)(kiln_instance *inst, int index, float *dst, int64_t count);
    int (*set_weight)(kiln_instance *inst, int index, const float *src, int64_t count);
    int (*save_weights)(kiln_instance *inst, const char *path);
    int (*load_weights)(kiln_instance *inst, const char *path);
    void (*set_seed)(kiln_instance *inst, uint64_t seed);
    int64_t (*iterations)(const kiln_instance *inst);
    const char *(*last_error)(const kiln_instance *inst);
    /* Copies the metric values of the last train/evaluate step (count must be desc->num_metrics). */
    int (*last_metrics)(const kiln_instance *inst, float *dst, int count);
    /* The same calls for a model with a free number of time steps (desc->free_steps):
     * `steps` is T, the length of axis 1 of every input (and of sequence outputs and
     * targets). For other models steps must be 0 or the model's own number of steps. */
    int (*predict_steps)(kiln_instance *inst, const void *const *inputs, void *const *outputs,
                         int64_t n, int64_t steps);
    int (*train_step_steps)(kiln_instance *inst, const void *const *x, const void *const *y,
                            int64_t n, int64_t steps, float *loss);
    int (*evaluate_steps)(kiln_instance *inst, const void *const *x, const void *const *y,
                          int64_t n, int64_t steps, float *loss);
    /* Threads the instance's calls use (1 to KILN_MAX_THREADS; 0: the default, $KILN_NUM_THREADS
     * or the number of online CPUs). Results do not depend on it. */
    int (*set_num_threads)(kiln_instance *inst, int threads);
    /* on != 0: predict/train/evaluate refuse NaN or infinite f32 inputs and targets,
     * naming the tensor and the row (off by default). */
    int (*set_check_inputs)(kiln_instance *inst, int on);
    /* Clears the state stateful recurrent layers carry between calls (desc->carried) to zeros,
     * as Keras' reset_states(); a model without any does nothing. */
    int (*reset_states)(kiln_instance *inst);
} kiln_api;

#ifdef __cplusplus
}
#endif
#endif
