/* ckpt_kill.c: saves cut off by SIGKILL never tear a checkpoint.
 *
 *   ./ckpt_kill DIR [KILLS]      (default 40 kills)
 *
 * The parent saves generation 0 to DIR/ck.kiln. Then, KILLS times: a child
 * process saves generations g+1, g+2, ... to the same path in a loop (every
 * weight of generation g holds the value g, and the seed is g), and the parent
 * kills it with SIGKILL after a random delay (0 to 25 ms) and reaps it. After
 * every kill the file on disk must load into a fresh instance and be one whole
 * generation (every weight equal, no older than the last seen): the old
 * checkpoint or a newer one. Every few kills the parent saves a generation
 * itself: after that successful save no `ck.kiln.tmp.*` file may remain. At the
 * end it prints how many kills left a temporary file (cut off mid-save).
 * Exits 0 when every check holds. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kiln_test_util.h"

static const kiln_api *api;
static const kiln_model_desc *d;

/* Every weight = g; the seed = g. */
static int set_generation(kiln_instance *m, long g) {
    for (int i = 0; i < d->num_weights; i++) {
        int64_t c = d->weights[i].count;
        float *w = malloc((size_t)c * 4 + 4);
        for (int64_t j = 0; j < c; j++) w[j] = (float)g;
        int rc = api->set_weight(m, i, w, c);
        free(w);
        if (rc != 0) return -1;
    }
    api->set_seed(m, (uint64_t)g);
    return 0;
}

/* The generation m holds (every weight equal), or -1 when its weights differ. */
static long generation_of(kiln_instance *m) {
    long g = -2;
    for (int i = 0; i < d->num_weights; i++) {
        int64_t c = d->weights[i].count;
        float *w = malloc((size_t)c * 4 + 4);
        api->get_weight(m, i, w, c);
        for (int64_t j = 0; j < c; j++) {
            if (g == -2) g = (long)w[j];
            if (w[j] != (float)g) g = -1;
        }
        free(w);
        if (g == -1) return -1;
    }
    return g;
}

static int temp_files(const char *dir) {
    DIR *dp = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (dp && (e = readdir(dp)) != NULL)
        if (strncmp(e->d_name, "ck.kiln.tmp.", 12) == 0) n++;
    if (dp) closedir(dp);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [KILLS]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int kills = argc > 2 ? atoi(argv[2]) : 40;
    char path[4096];
    snprintf(path, sizeof path, "%s/ck.kiln", dir);
    api = kiln_entry();
    d = api->desc;
    if (d->num_weights == 0) {
        fprintf(stderr, "ckpt_kill: model '%s' has no weights\n", d->name);
        return 1;
    }
    kiln_instance *m = api->create(d);
    CHECK(m && set_generation(m, 0) == 0 && api->save_weights(m, path) == 0, "the first save: %s", api->last_error(m));
    long last = 0, next = 1;
    int cut = 0, whole = 0, newer = 0, left_after_save = 0;
    uint64_t rng = (uint64_t)getpid();
    for (int k = 0; k < kills; k++) {
        long start = next;
        pid_t child = fork();
        if (child == 0) {
            for (long g = start;; g++)
                if (set_generation(m, g) != 0 || api->save_weights(m, path) != 0) _exit(3);
        }
        struct timespec t = {0, (long)(rng_next(&rng) % 25000000)};
        nanosleep(&t, NULL);
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "kill %d: the child ended otherwise (status %d)", k,
              status);
        if (temp_files(dir) > 0) cut++;
        kiln_instance *check = api->create(d);
        int rc = api->load_weights(check, path);
        CHECK(rc == 0, "kill %d: the checkpoint does not load: %s", k, api->last_error(check));
        long g = rc == 0 ? generation_of(check) : -1;
        CHECK(g >= 0, "kill %d: the checkpoint mixes generations", k);
        CHECK(g >= last, "kill %d: generation %ld is older than %ld, seen before", k, g, last);
        if (rc == 0 && g >= 0) {
            whole++;
            if (g > last) newer++;
            last = g;
        }
        api->destroy(check);
        /* The next generations are newer than anything the child may have written. */
        next = start + 10000;   /* (floats hold these integers exactly) */
        if (k % 4 == 3 || k == kills - 1) {
            CHECK(set_generation(m, next) == 0 && api->save_weights(m, path) == 0, "parent save: %s", api->last_error(m));
            int left = temp_files(dir);
            if (left) left_after_save++;
            CHECK(left == 0, "after kill %d and a successful save, %d temporary file(s) remain", k, left);
            last = next++;
        }
    }
    api->destroy(m);
    printf("checkpoint kills: %d kills while saving, %d cut off mid-save (a temporary file left), "
           "%d loads whole (%d newer than before), %d saves left temporary files behind\n",
           kills, cut, whole, newer, left_after_save);
    if (test_failures) {
        fprintf(stderr, "ckpt_kill: %d check(s) failed\n", test_failures);
        return 1;
    }
    printf("ckpt_kill OK (model %s)\n", d->name);
    return 0;
}
