/* libsnow_ws.so, part 7 of 7: waiting for snow_ws_shutdown() or a signal (see snow_ws_api.c for the seven files
 * and their order). */

/* -- waiting for snow_ws_shutdown() or SIGINT/SIGTERM -------------------------------------------------------------
 *
 * Blocked callers wait on a condition variable for `snow_abi_wait_gen` to change. snow_ws_shutdown() bumps it
 * directly. A signal handler may only do async-signal-safe things, so it writes the signal number to a pipe; a
 * watcher thread (all signals blocked, started once) reads it and bumps the generation. The handlers are installed
 * while at least one caller waits (or is stopping its server after the wait), and the previous ones restored when
 * the last leaves. */

static pthread_mutex_t snow_abi_wait_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t snow_abi_wait_cond = PTHREAD_COND_INITIALIZER;
static uint64_t snow_abi_wait_gen;      /* bumped by each wake-up */
static int64_t snow_abi_wait_reason;    /* of the latest wake-up: 0 = snow_ws_shutdown, else a signal number */
static int64_t snow_abi_wait_blocked;   /* callers not yet woken */
static int64_t snow_abi_wait_users;     /* callers between begin and end: the signal handlers are installed */
static int snow_abi_wait_pending;       /* a snow_ws_shutdown() that found nobody blocked */
static int snow_abi_sig_pipe[2] = {-1, -1};
static int snow_abi_sig_ok;
static pthread_once_t snow_abi_sig_once = PTHREAD_ONCE_INIT;
static struct sigaction snow_abi_old_int, snow_abi_old_term;
static int snow_abi_caught_int, snow_abi_caught_term;

static void snow_abi_wake_locked(int64_t reason)
{
    snow_abi_wait_gen++;
    snow_abi_wait_reason = reason;
    snow_abi_wait_blocked = 0;
    pthread_cond_broadcast(&snow_abi_wait_cond);
}

static void snow_abi_on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t r = write(snow_abi_sig_pipe[1], &b, 1); /* non-blocking: a full pipe already holds a wake-up */
    (void)r;
    errno = saved;
}

static void *snow_abi_signal_watcher(void *arg)
{
    unsigned char b;
    (void)arg;
    for (;;) {
        ssize_t r = read(snow_abi_sig_pipe[0], &b, 1);
        if (r == 1) {
            pthread_mutex_lock(&snow_abi_wait_lock);
            if (snow_abi_wait_users > 0)
                snow_abi_wake_locked(b);
            pthread_mutex_unlock(&snow_abi_wait_lock);
        }
        else if (r < 0 && errno == EINTR) {
            continue;
        }
        else {
            return NULL;
        }
    }
}

static void snow_abi_signal_setup(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;

    if (pipe(snow_abi_sig_pipe) != 0)
        return;
    fcntl(snow_abi_sig_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(snow_abi_sig_pipe[1], F_SETFD, FD_CLOEXEC);
    fcntl(snow_abi_sig_pipe[1], F_SETFL, fcntl(snow_abi_sig_pipe[1], F_GETFL) | O_NONBLOCK);
    /* The watcher inherits a mask that blocks every signal: process signals go to the host's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&thread, &attr, snow_abi_signal_watcher, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        close(snow_abi_sig_pipe[0]);
        close(snow_abi_sig_pipe[1]);
        return;
    }
    snow_abi_sig_ok = 1;
}

/* Caught even when the host ignored it (a shell starts background jobs with SIGINT ignored): an explicit
 * `kill -INT` still stops the server, as it does the Python CLI (asyncio installs its handlers unconditionally). */
static void snow_abi_catch(int sig, struct sigaction *old, int *caught)
{
    struct sigaction sa;
    *caught = 0;
    if (!snow_abi_sig_ok)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = snow_abi_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    *caught = sigaction(sig, &sa, old) == 0;
}

typedef struct SnowAbiWaiter {
    uint64_t gen;
} SnowAbiWaiter;

/* Returns 1 (and consumes it) if a shutdown request is pending: the caller returns at once, without calling
 * snow_abi_wait_end. Otherwise 0: the caller counts as blocked from now on. */
static int snow_abi_wait_begin(SnowAbiWaiter *w)
{
    pthread_once(&snow_abi_sig_once, snow_abi_signal_setup);
    pthread_mutex_lock(&snow_abi_wait_lock);
    if (snow_abi_wait_pending) {
        snow_abi_wait_pending = 0;
        pthread_mutex_unlock(&snow_abi_wait_lock);
        return 1;
    }
    if (snow_abi_wait_users++ == 0) {
        snow_abi_catch(SIGINT, &snow_abi_old_int, &snow_abi_caught_int);
        snow_abi_catch(SIGTERM, &snow_abi_old_term, &snow_abi_caught_term);
    }
    snow_abi_wait_blocked++;
    w->gen = snow_abi_wait_gen;
    pthread_mutex_unlock(&snow_abi_wait_lock);
    return 0;
}

static int64_t snow_abi_wait(SnowAbiWaiter *w)
{
    int64_t reason;
    pthread_mutex_lock(&snow_abi_wait_lock);
    while (snow_abi_wait_gen == w->gen)
        pthread_cond_wait(&snow_abi_wait_cond, &snow_abi_wait_lock);
    reason = snow_abi_wait_reason;
    pthread_mutex_unlock(&snow_abi_wait_lock);
    return reason;
}

static void snow_abi_wait_end(SnowAbiWaiter *w)
{
    pthread_mutex_lock(&snow_abi_wait_lock);
    if (snow_abi_wait_gen == w->gen && snow_abi_wait_blocked > 0)
        snow_abi_wait_blocked--; /* left without being woken (its server failed to start) */
    if (--snow_abi_wait_users == 0) {
        if (snow_abi_caught_int)
            sigaction(SIGINT, &snow_abi_old_int, NULL);
        if (snow_abi_caught_term)
            sigaction(SIGTERM, &snow_abi_old_term, NULL);
        snow_abi_caught_int = snow_abi_caught_term = 0;
    }
    pthread_mutex_unlock(&snow_abi_wait_lock);
}

SNOW_WS_API int64_t snow_ws_shutdown(void)
{
    int64_t woken;
    pthread_mutex_lock(&snow_abi_wait_lock);
    woken = snow_abi_wait_blocked;
    if (woken > 0)
        snow_abi_wake_locked(0);
    else
        snow_abi_wait_pending = 1;
    pthread_mutex_unlock(&snow_abi_wait_lock);
    return woken;
}

SNOW_WS_API int64_t snow_ws_wait_shutdown(void)
{
    SnowAbiWaiter w;
    int64_t reason;
    if (snow_abi_wait_begin(&w))
        return 0;
    reason = snow_abi_wait(&w);
    snow_abi_wait_end(&w);
    return reason;
}

/* The server of snow_ws_serve / snow_ws_serve_tls / mesh_ws_serve (host NULL: the default address), with the options
 * the arguments give and the rest from the environment (read at each call).
 * block = 1 (snow_ws_serve, both serve_tls): run it until snow_ws_shutdown() or a signal, then stop it. Returns -1
 *   if it could not start (the error is set), else 0 (including a pending shutdown request: nothing started).
 * block = 0 (mesh_ws_serve): start it and return its id (> 0), or -1 if it could not start (the error is set). No
 *   wait, no signal handlers; a pending shutdown request stays pending. */
static int64_t snow_abi_serve(void *on_connect_fn, void *on_connect_env, void *on_message_fn, void *on_message_env,
                              void *on_close_fn, void *on_close_env, int64_t port, const char *host,
                              const char *cert, const char *key, int block)
{
    SnowWsOptions opts;
    SnowAbiWaiter w;
    int64_t server;
    const char *cluster, *ttl, *reuse;

    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.host = host;
    opts.port = port;
    opts.tls_cert_path = cert;
    opts.tls_key_path = key;
    /* What the serve functions cannot take as arguments comes from the environment (read at each call). */
    cluster = getenv("SNOW_WS_CLUSTER");
    if (cluster != NULL && cluster[0] != '\0')
        opts.cluster_url = cluster;
    ttl = getenv("SNOW_WS_CLUSTER_PRESENCE_TTL_MS");
    if (ttl != NULL && ttl[0] != '\0')
        opts.cluster_presence_ttl_ms = strtoll(ttl, NULL, 10);
    reuse = getenv("SNOW_WS_REUSE_PORT");
    opts.reuse_port = reuse != NULL && reuse[0] != '\0' && strcmp(reuse, "0") != 0;
    if (!block)
        return snow_abi_py_start(&opts, on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn,
                                 on_close_env);
    if (snow_abi_wait_begin(&w))
        return 0; /* a pending snow_ws_shutdown() */
    server = snow_abi_py_start(&opts, on_connect_fn, on_connect_env, on_message_fn, on_message_env, on_close_fn,
                               on_close_env);
    if (server > 0) {
        snow_abi_wait(&w);
        /* Stopped while the handlers are still ours: a second signal does not kill the process mid-close. */
        snow_abi_py_stop(server, -1);
    }
    snow_abi_wait_end(&w);
    return server > 0 ? 0 : -1;
}
