/* reaper.c — run one server under a child subreaper, for perf/compare.sh.
 *
 * Usage: reaper CMD [ARG...]
 *
 * Forking servers leave processes that outlive their parent (vsftpd's
 * unprivileged session process, for one); orphans normally go to init, and
 * their CPU time and memory leave the server's process tree. Under this
 * subreaper they come back here instead and are reaped here, so the tree
 * rooted at this process holds every live process of the server, and this
 * process's cutime/cstime holds the CPU of every one that has ended.
 * procstat.py --skip-root leaves this process's own (tiny) memory out.
 *
 * SIGTERM/SIGINT: passed to CMD, then to every process left under us; after
 * STOP_GRACE_SECS whatever remains is killed. Exits with CMD's status (or
 * 128+signal). Stdin, stdout and stderr are CMD's.
 *
 * Build: gcc -O2 -Wall -o reaper reaper.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

enum { STOP_GRACE_SECS = 5 };

static volatile sig_atomic_t stop_sig, grace_over;

static void on_stop(int sig) { stop_sig = sig; }

static void on_alarm(int sig) { (void)sig; grace_over = 1; }

/* Send SIG to every direct child (orphans re-parented here included). */
static void signal_children(int sig) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    FILE *f = fopen(path, "r");
    if (!f) return;
    int pid;
    while (fscanf(f, "%d", &pid) == 1) kill(pid, sig);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CMD [ARG...]\n", argv[0]);
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        perror("reaper: PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_stop};   /* no SA_RESTART: wake waitpid */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction al = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &al, NULL);

    pid_t main_pid = fork();
    if (main_pid < 0) {
        perror("reaper: fork");
        return 1;
    }
    if (main_pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execvp(argv[1], argv + 1);
        fprintf(stderr, "reaper: exec %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }

    int status = 0, main_done = 0, stopping = 0;
    for (;;) {
        if (stop_sig && !stopping) {
            stopping = 1;
            if (!main_done) kill(main_pid, SIGTERM);
            signal_children(SIGTERM);
            alarm(STOP_GRACE_SECS);
        }
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno != EINTR) break;    /* ECHILD: nothing left under us */
            if (grace_over) {
                grace_over = 0;
                signal_children(SIGKILL);
            }
            continue;
        }
        if (pid == main_pid) {
            main_done = 1;
            status = st;
            /* The server is gone: its orphans have nothing left to serve. */
            if (!stopping) stop_sig = SIGTERM;
        }
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}
