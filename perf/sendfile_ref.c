/* sendfile_ref.c — the reference ceiling for perf/compare.sh: the least FTP a
 * download client needs, and RETR as nothing but sendfile(2) in big chunks.
 *
 * Usage: sendfile_ref ROOT PORT      (listens on 127.0.0.1:PORT only)
 *
 * One forked process per session, blocking I/O, no limits, no logging, no
 * LIST: it exists so that `mirrorftpd bench retr` (and curl) can be pointed at
 * "the kernel's own speed" and every RETR figure read as a ratio to it. It is
 * not a server: paths are only checked for "..", anyone may log in, and it
 * must never listen anywhere but loopback.
 *
 * Replies: 220 greeting; USER 331; PASS 230; TYPE/MODE/STRU/OPTS/NOOP 200;
 * SYST 215; FEAT 211; PWD 257; CWD 250; SIZE 213; EPSV 229 and PASV 227 (a
 * fresh loopback listener each); RETR 150, sendfile the whole file, close the
 * data connection, 226; QUIT 221; anything else 502.
 *
 * Build: gcc -O2 -Wall -o sendfile_ref sendfile_ref.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    LINE_MAX_BYTES = 4096,           /* a longer command line ends the session */
    SENDFILE_CHUNK = 1 << 30,        /* bytes asked of one sendfile(2) call */
    DATA_ACCEPT_MS = 10000,          /* wait for the passive data connection */
    CONTROL_IDLE_MS = 600000,        /* silence on the control connection */
    LISTEN_BACKLOG = 4096,
};

static const char *root;

/* Reap finished sessions (so their CPU time adds up in the listener's). */
static void reap(int sig) {
    (void)sig;
    int saved = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    errno = saved;
}

static int say(int fd, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || n > (int)sizeof buf - 3) return -1;
    buf[n++] = '\r';
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        off += w;
    }
    return 0;
}

/* A loopback listener on an ephemeral port; its port in *port. */
static int passive_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Open ROOT/path for reading; NULL-safe, refuses "..". */
static int open_in_root(const char *path, struct stat *st) {
    char full[4096];
    while (*path == '/') path++;
    if (strstr(path, "..")) return -1;
    if (snprintf(full, sizeof full, "%s/%s", root, path) >= (int)sizeof full) return -1;
    int fd = open(full, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void retr(int ctl, int *pasv, const char *path) {
    struct stat st;
    int file = open_in_root(path, &st);
    if (file < 0) {
        say(ctl, "550 No such file.");
        return;
    }
    if (*pasv < 0) {
        close(file);
        say(ctl, "425 Use EPSV or PASV first.");
        return;
    }
    say(ctl, "150 Opening BINARY mode data connection (%lld bytes).", (long long)st.st_size);
    struct pollfd p = {.fd = *pasv, .events = POLLIN};
    int data = -1;
    if (poll(&p, 1, DATA_ACCEPT_MS) == 1) data = accept4(*pasv, NULL, NULL, SOCK_CLOEXEC);
    close(*pasv);
    *pasv = -1;
    if (data < 0) {
        close(file);
        say(ctl, "425 No data connection.");
        return;
    }
    off_t off = 0;
    int ok = 1;
    while (off < st.st_size) {
        size_t want = st.st_size - off > SENDFILE_CHUNK ? SENDFILE_CHUNK : (size_t)(st.st_size - off);
        ssize_t n = sendfile(data, file, &off, want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {                 /* error, or the file shrank under us */
            ok = 0;
            break;
        }
    }
    close(data);
    close(file);
    say(ctl, ok ? "226 Transfer complete." : "426 Transfer aborted.");
}

/* Returns 0 to keep the session, -1 to end it. */
static int command(int ctl, int *pasv, char *line) {
    char *arg = strchr(line, ' ');
    if (arg) *arg++ = '\0'; else arg = "";
    if (!strcasecmp(line, "USER")) return say(ctl, "331 Any password will do.");
    if (!strcasecmp(line, "PASS")) return say(ctl, "230 Logged in.");
    if (!strcasecmp(line, "TYPE") || !strcasecmp(line, "MODE") || !strcasecmp(line, "STRU") ||
        !strcasecmp(line, "OPTS") || !strcasecmp(line, "NOOP"))
        return say(ctl, "200 OK.");
    if (!strcasecmp(line, "SYST")) return say(ctl, "215 UNIX Type: L8");
    if (!strcasecmp(line, "FEAT")) {
        if (say(ctl, "211-Features:") < 0 || say(ctl, " EPSV") < 0 || say(ctl, " PASV") < 0 ||
            say(ctl, " SIZE") < 0)
            return -1;
        return say(ctl, "211 End");
    }
    if (!strcasecmp(line, "PWD")) return say(ctl, "257 \"/\" is the current directory.");
    if (!strcasecmp(line, "CWD")) return say(ctl, "250 OK.");
    if (!strcasecmp(line, "SIZE")) {
        struct stat st;
        int fd = open_in_root(arg, &st);
        if (fd < 0) return say(ctl, "550 No such file.");
        close(fd);
        return say(ctl, "213 %lld", (long long)st.st_size);
    }
    if (!strcasecmp(line, "EPSV") || !strcasecmp(line, "PASV")) {
        int port;
        if (*pasv >= 0) close(*pasv);
        *pasv = passive_listener(&port);
        if (*pasv < 0) return say(ctl, "425 Cannot open a passive port.");
        if (!strcasecmp(line, "EPSV"))
            return say(ctl, "229 Entering Extended Passive Mode (|||%d|)", port);
        return say(ctl, "227 Entering Passive Mode (127,0,0,1,%d,%d)", port >> 8, port & 255);
    }
    if (!strcasecmp(line, "RETR")) {
        retr(ctl, pasv, arg);
        return 0;
    }
    if (!strcasecmp(line, "QUIT")) {
        say(ctl, "221 Bye.");
        return -1;
    }
    return say(ctl, "502 Not implemented here.");
}

static void session(int ctl) {
    char buf[LINE_MAX_BYTES];
    size_t have = 0;
    int pasv = -1;
    if (say(ctl, "220 sendfile_ref ready.") < 0) return;
    for (;;) {
        struct pollfd p = {.fd = ctl, .events = POLLIN};
        if (poll(&p, 1, CONTROL_IDLE_MS) != 1) return;
        ssize_t n = read(ctl, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        have += n;
        char *nl;
        while ((nl = memchr(buf, '\n', have))) {
            size_t len = nl - buf + 1;
            *nl = '\0';
            if (nl > buf && nl[-1] == '\r') nl[-1] = '\0';
            if (command(ctl, &pasv, buf) < 0) return;
            memmove(buf, buf + len, have - len);
            have -= len;
        }
        if (have == sizeof buf) return;   /* a line too long: protocol error */
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ROOT PORT\n", argv[0]);
        return 2;
    }
    root = argv[1];
    int port = atoi(argv[2]);
    struct sigaction sa = {.sa_handler = reap, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, LISTEN_BACKLOG) < 0) {
        perror("sendfile_ref: listen");
        return 1;
    }
    pid_t parent = getpid();
    for (;;) {
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) { usleep(10000); continue; }
            perror("sendfile_ref: accept");
            return 1;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(ls);
            /* Die with the listener, so stopping it stops every session. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(0);
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            session(c);
            _exit(0);
        }
        close(c);
    }
}
