/* The scheduler's C part: snow_rt_py.runtime._scheduler_core (build_ffi.py, target "hotpath").
 *
 * ActorCore is the base class of runtime.scheduler.Actor: the mailbox, the alive and running marks, and the lock
 * that guards the three. Every change to them goes through the rules below, in C here and in Python in
 * scheduler.py's PyActorCore (the reference, used without the compiled parts); tests/runtime/test_scheduler.py
 * runs both through the same cases.
 *
 *   offer(tag, payload, inline_ok)  put a message in the mailbox and say what the caller must do: DEAD (dropped),
 *                                   QUEUED (already scheduled), SCHEDULE (schedule a run), or -- with inline_ok,
 *                                   for an idle actor with an empty mailbox -- INLINE: not queued, the actor is
 *                                   marked running and the caller runs the message now, then calls settle();
 *   settle()                        after an inline run: idle again (True), or messages arrived meanwhile (False:
 *                                   the caller runs them);
 *   take(stop)                      the next message of a run, or None (mailbox empty: idle again; also when the
 *                                   actor has exited), or False (stop is true and messages remain: reschedule);
 *   kill()                          the actor exits: no more messages are taken, the mailbox is dropped.
 *
 * Lock discipline, the same in both languages: the actor's lock is held for each check-and-set above and for
 * nothing else (no behaviour runs, nothing blocks and the GIL is never released under it); it does not rely on the
 * GIL for mutual exclusion. In C the lock is one atomic flag (an uncontended take and give are two atomic
 * operations, cheaper than a PyThread lock's semaphore: this is on every message's path); a thread that finds it
 * taken gives up the GIL and the processor until it is free, so it never spins against a holder it is blocking. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sched.h>
#include <structmember.h>

#include "_scheduler_core.h"

typedef struct {
    PyObject_HEAD
    PyObject *mailbox; /* collections.deque of (tag, payload), or None until the first queued message */
    char lock; /* taken with __atomic_test_and_set */
    char alive;
    char running; /* on the run queue, being run, or running a message inline */
} Actor;

static PyObject *DEQUE; /* collections.deque */
static PyObject *s_append, *s_popleft;

static inline void lock(Actor *a)
{
    while (__atomic_test_and_set(&a->lock, __ATOMIC_ACQUIRE)) {
        Py_BEGIN_ALLOW_THREADS
        sched_yield();
        Py_END_ALLOW_THREADS
    }
}

static inline void unlock(Actor *a)
{
    __atomic_clear(&a->lock, __ATOMIC_RELEASE);
}

static inline int mailbox_empty(Actor *a)
{
    return a->mailbox == Py_None || Py_SIZE(a->mailbox) == 0; /* a deque's length is its ob_size */
}

static PyObject *actor_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    Actor *self = (Actor *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->mailbox = Py_NewRef(Py_None);
    self->alive = 1;
    return (PyObject *)self;
}

static int actor_traverse(Actor *self, visitproc visit, void *arg)
{
    Py_VISIT(self->mailbox);
    return 0;
}

static int actor_clear(Actor *self)
{
    Py_CLEAR(self->mailbox);
    return 0;
}

static void actor_dealloc(Actor *self)
{
    PyObject_GC_UnTrack(self);
    actor_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* -- the rules -------------------------------------------------------------------------------------------- */

static int claim(PyObject *obj)
{
    Actor *a = (Actor *)obj;
    int r;
    lock(a);
    if (!a->alive) {
        r = SNOW_ACTOR_DEAD;
    } else if (!a->running && mailbox_empty(a)) {
        a->running = 1;
        r = SNOW_ACTOR_INLINE;
    } else {
        r = SNOW_ACTOR_BUSY;
    }
    unlock(a);
    return r;
}

static int settle(PyObject *obj)
{
    Actor *a = (Actor *)obj;
    int idle;
    lock(a);
    idle = mailbox_empty(a);
    if (idle)
        a->running = 0;
    unlock(a);
    return idle;
}

static PyObject *actor_offer(Actor *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "offer(tag, payload, inline_ok)");
        return NULL;
    }
    int inline_ok = PyObject_IsTrue(args[2]);
    if (inline_ok < 0)
        return NULL;
    if (inline_ok) {
        int r = claim((PyObject *)self);
        if (r != SNOW_ACTOR_BUSY)
            return PyLong_FromLong(r);
    }
    /* Everything that may allocate or call out is made before the lock is taken. */
    PyObject *item = PyTuple_Pack(2, args[0], args[1]);
    if (item == NULL)
        return NULL;
    PyObject *fresh = NULL;
    if (self->mailbox == Py_None && (fresh = PyObject_CallNoArgs(DEQUE)) == NULL) {
        Py_DECREF(item);
        return NULL;
    }
    int r;
    PyObject *dropped = NULL;
    lock(self);
    if (!self->alive) {
        r = SNOW_ACTOR_DEAD;
    } else {
        if (self->mailbox == Py_None && fresh != NULL) {
            dropped = self->mailbox; /* None */
            self->mailbox = fresh;
            fresh = NULL;
        }
        r = -2; /* append below, still under the lock */
    }
    if (r == -2) {
        PyObject *ok = PyObject_CallMethodOneArg(self->mailbox, s_append, item); /* deque.append: C, no callout */
        if (ok == NULL) {
            unlock(self);
            Py_DECREF(item);
            Py_XDECREF(fresh);
            Py_XDECREF(dropped);
            return NULL;
        }
        Py_DECREF(ok);
        r = self->running ? SNOW_ACTOR_QUEUED : SNOW_ACTOR_SCHEDULE;
        self->running = 1;
    }
    unlock(self);
    Py_DECREF(item);
    Py_XDECREF(fresh);
    Py_XDECREF(dropped);
    return PyLong_FromLong(r);
}

static PyObject *actor_settle(Actor *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(settle((PyObject *)self));
}

static PyObject *actor_take(Actor *self, PyObject *stop_arg)
{
    int stop = PyObject_IsTrue(stop_arg);
    if (stop < 0)
        return NULL;
    PyObject *dropped = NULL, *item = NULL;
    lock(self);
    if (!self->alive && self->mailbox != Py_None) {
        dropped = self->mailbox;
        self->mailbox = Py_NewRef(Py_None);
    }
    if (mailbox_empty(self)) {
        self->running = 0;
        unlock(self);
        Py_XDECREF(dropped);
        Py_RETURN_NONE;
    }
    if (stop) {
        unlock(self);
        Py_RETURN_FALSE;
    }
    item = PyObject_CallMethodNoArgs(self->mailbox, s_popleft); /* deque.popleft: C, no callout */
    unlock(self);
    return item;
}

static PyObject *actor_kill(Actor *self, PyObject *unused)
{
    (void)unused;
    PyObject *dropped = NULL;
    int was_alive;
    lock(self);
    was_alive = self->alive;
    if (was_alive) {
        self->alive = 0;
        dropped = self->mailbox;
        self->mailbox = Py_NewRef(Py_None);
    }
    unlock(self);
    Py_XDECREF(dropped); /* the messages' objects are freed without the lock held */
    return PyBool_FromLong(was_alive);
}

static PyObject *actor_pending(Actor *self, PyObject *unused)
{
    (void)unused;
    Py_ssize_t n;
    lock(self);
    n = self->mailbox == Py_None ? 0 : Py_SIZE(self->mailbox);
    unlock(self);
    return PyLong_FromSsize_t(n);
}

static PyMethodDef actor_methods[] = {
    {"offer", (PyCFunction)(void (*)(void))actor_offer, METH_FASTCALL,
     "offer(tag, payload, inline_ok) -> DEAD | QUEUED | SCHEDULE | INLINE (see _scheduler_core.c)."},
    {"settle", (PyCFunction)actor_settle, METH_NOARGS, "After an inline run: True if idle again."},
    {"take", (PyCFunction)actor_take, METH_O, "take(stop) -> (tag, payload) | None (idle) | False (reschedule)."},
    {"kill", (PyCFunction)actor_kill, METH_NOARGS, "Exit: True if the actor was alive."},
    {"pending", (PyCFunction)actor_pending, METH_NOARGS, "Messages in the mailbox."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef actor_members[] = {
    {"alive", T_BOOL, offsetof(Actor, alive), READONLY, "False once the actor has exited."},
    {"running", T_BOOL, offsetof(Actor, running), READONLY, "Scheduled, being run, or running a message inline."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ActorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "snow_rt_py.runtime._scheduler_core.ActorCore",
    .tp_basicsize = sizeof(Actor),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "An actor's mailbox and run marks, and the rules that change them (see the module).",
    .tp_new = actor_new,
    .tp_dealloc = (destructor)actor_dealloc,
    .tp_traverse = (traverseproc)actor_traverse,
    .tp_clear = (inquiry)actor_clear,
    .tp_members = actor_members,
    .tp_methods = actor_methods,
};

/* Actor is a subclass: the exact type that last passed is remembered (a pointer compare, not a walk of the MRO). */
static PyTypeObject *LAST_TYPE;

static int api_claim(PyObject *actor)
{
    PyTypeObject *t = Py_TYPE(actor);
    if (t != LAST_TYPE) {
        if (!PyType_IsSubtype(t, &ActorType))
            return SNOW_ACTOR_BUSY; /* not ours: the caller delivers it the usual way */
        Py_XSETREF(LAST_TYPE, (PyTypeObject *)Py_NewRef(t));
    }
    return claim(actor);
}

static int api_settle(PyObject *actor)
{
    return settle(actor); /* only after claim answered SNOW_ACTOR_INLINE: an ActorCore */
}

static const SnowSchedulerAPI API = {SNOW_SCHEDULER_API_VERSION, &ActorType, api_claim, api_settle};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "snow_rt_py.runtime._scheduler_core",
    "The scheduler's C part: Actor's base class and its C API (see _scheduler_core.c).", -1, NULL, NULL, NULL, NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__scheduler_core(void)
{
    if ((s_append = PyUnicode_InternFromString("append")) == NULL ||
        (s_popleft = PyUnicode_InternFromString("popleft")) == NULL)
        return NULL;
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections == NULL)
        return NULL;
    DEQUE = PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (DEQUE == NULL || PyType_Ready(&ActorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    PyObject *capsule = PyCapsule_New((void *)&API, SNOW_SCHEDULER_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0 ||
        PyModule_AddObjectRef(m, "ActorCore", (PyObject *)&ActorType) < 0 ||
        PyModule_AddIntConstant(m, "DEAD", SNOW_ACTOR_DEAD) < 0 ||
        PyModule_AddIntConstant(m, "QUEUED", SNOW_ACTOR_QUEUED) < 0 ||
        PyModule_AddIntConstant(m, "SCHEDULE", SNOW_ACTOR_SCHEDULE) < 0 ||
        PyModule_AddIntConstant(m, "INLINE", SNOW_ACTOR_INLINE) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
