/* libsnow_ws.so, part 2 of 7: calling the host's on_connect, on_close and on_presence callbacks (see snow_ws_api.c
 * for the seven files and their order). */

/* -- callbacks (called from Python, which has released the GIL for the call) ------------------------------------ */

/* A SnowString valid for one callback: on the stack when small, else on the heap. */
typedef struct SnowAbiTmp {
    SnowString *s;
    union {
        SnowString header;
        char bytes[sizeof(SnowString) + 240];
    } small;
} SnowAbiTmp;

static SnowString *snow_abi_tmp(SnowAbiTmp *t, const char *data, size_t len)
{
    if (len <= sizeof t->small.bytes - sizeof(SnowString))
        t->s = &t->small.header;
    else if ((t->s = malloc(sizeof(SnowString) + len)) == NULL)
        return NULL;
    t->s->len = len;
    if (len > 0)
        memcpy(t->s + 1, data, len);
    return t->s;
}

static void snow_abi_tmp_free(SnowAbiTmp *t)
{
    if (t->s != &t->small.header)
        free(t->s);
}

/* Returns 1 to accept, 0 to reject, -1 out of memory (the caller rejects). */
static int snow_abi_call_on_connect(void *fn, void *env, uint64_t conn, const char *path, size_t path_len,
                                    uint64_t headers)
{
    SnowAbiTmp t;
    void *verdict;
    const SnowHeaders *h = (const SnowHeaders *)(uintptr_t)headers;
    if (snow_abi_tmp(&t, path, path_len) == NULL)
        return -1;
    if (env == NULL)
        verdict = ((SnowWsOnConnectFn)fn)((void *)(uintptr_t)conn, t.s, h);
    else
        verdict = ((SnowWsOnConnectEnvFn)fn)(env, (void *)(uintptr_t)conn, t.s, h);
    snow_abi_tmp_free(&t);
    return verdict != NULL;
}

static int snow_abi_call_on_close(void *fn, void *env, uint64_t conn, int64_t code, const char *reason,
                                  size_t reason_len)
{
    SnowAbiTmp t;
    if (snow_abi_tmp(&t, reason, reason_len) == NULL)
        return -1;
    if (env == NULL)
        ((SnowWsOnCloseFn)fn)((void *)(uintptr_t)conn, code, t.s);
    else
        ((SnowWsOnCloseEnvFn)fn)(env, (void *)(uintptr_t)conn, code, t.s);
    snow_abi_tmp_free(&t);
    return 0;
}

static int snow_abi_call_on_presence(void *fn, void *env, uint64_t conn, const char *room, size_t room_len,
                                     int64_t joined, uint64_t member, int64_t node, const char *meta, size_t meta_len)
{
    SnowAbiTmp r, m;
    if (snow_abi_tmp(&r, room, room_len) == NULL)
        return -1;
    if (snow_abi_tmp(&m, meta, meta_len) == NULL) {
        snow_abi_tmp_free(&r);
        return -1;
    }
    if (env == NULL)
        ((SnowWsOnPresenceFn)fn)((void *)(uintptr_t)conn, r.s, joined, (void *)(uintptr_t)member, node, m.s);
    else
        ((SnowWsOnPresenceEnvFn)fn)(env, (void *)(uintptr_t)conn, r.s, joined, (void *)(uintptr_t)member, node, m.s);
    snow_abi_tmp_free(&m);
    snow_abi_tmp_free(&r);
    return 0;
}
