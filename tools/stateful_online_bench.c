/* One-sample-per-call streaming through a stateful model: the time of one predict call.
 * Build: kiln compile Tests/stateful/stateful_lstm_online/model.keras -o DIR --name online
 *        cc -O2 tools/stateful_online_bench.c -I DIR -L DIR -lonline -Wl,-rpath,DIR -o bench && ./bench */
#include <stdio.h>
#include <time.h>
#include "online.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    online_model *m = online_create();
    if (!m) { fprintf(stderr, "%s\n", online_last_error(NULL)); return 1; }
    online_set_num_threads(m, 1);
    float x[3] = { 0.1f, -0.2f, 0.3f }, y[1];
    const int calls = 200000;
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        online_reset_states(m);
        double t0 = now();
        for (int i = 0; i < calls; i++) {
            x[0] = (float)(i % 7) * 0.1f;
            if (online_predict(m, x, y, 1) != 0) { fprintf(stderr, "%s\n", online_last_error(m)); return 1; }
        }
        double per = (now() - t0) / calls * 1e6;
        if (per < best) best = per;
    }
    printf("one-sample stateful predict: %.3f us per call (best of 5 x %d calls), last y %g\n", best, calls, y[0]);
    online_destroy(m);
    return 0;
}
