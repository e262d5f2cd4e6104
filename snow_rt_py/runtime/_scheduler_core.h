/* The scheduler's C API, for the connection's C part (runtime/_connection_core.c): internal, not installed.
 *
 * snow_rt_py.runtime._scheduler_core (runtime/_scheduler_core.c) defines ActorCore, the C base class of
 * runtime.scheduler.Actor: an actor's mailbox, its alive / running marks and the lock that guards them, and the
 * rules that change them (offer, settle, take, kill), which Scheduler.deliver and Scheduler._run call. This header
 * is the one declaration of the two rules the connection's C calls directly (run one message inline), exported in
 * a capsule; call snow_scheduler_import() once, at the importing module's init. */

#ifndef SNOW_SCHEDULER_CORE_H
#define SNOW_SCHEDULER_CORE_H

#include <Python.h>

#define SNOW_SCHEDULER_CAPSULE "snow_rt_py.runtime._scheduler_core._C_API"
#define SNOW_SCHEDULER_API_VERSION 1

/* What ActorCore.offer and claim answer (the same numbers as scheduler.py's DEAD, QUEUED, ...). */
enum {
    SNOW_ACTOR_DEAD = 0,     /* the actor has exited: the message is dropped */
    SNOW_ACTOR_QUEUED = 1,   /* in the mailbox; the actor is already scheduled or running */
    SNOW_ACTOR_SCHEDULE = 2, /* in the mailbox, and the actor marked running: the caller schedules a run */
    SNOW_ACTOR_INLINE = 3,   /* not queued: the actor was idle with an empty mailbox and is now marked running;
                                the caller runs the message now, then calls settle */
    SNOW_ACTOR_BUSY = 4,     /* claim only: not idle, nothing changed (deliver the message the usual way) */
};

typedef struct {
    int version;        /* SNOW_SCHEDULER_API_VERSION */
    PyTypeObject *type; /* ActorCore */
    /* ActorCore.offer(..., inline_ok=True) without a message: SNOW_ACTOR_INLINE (claimed), SNOW_ACTOR_DEAD or
     * SNOW_ACTOR_BUSY (also for an object that is not an ActorCore). */
    int (*claim)(PyObject *actor);
    /* ActorCore.settle, only after claim answered SNOW_ACTOR_INLINE: 1 if the actor is idle again, 0 if messages
     * arrived meanwhile (the caller runs them: Scheduler._run). */
    int (*settle)(PyObject *actor);
} SnowSchedulerAPI;

static const SnowSchedulerAPI *snow_scheduler_api;

/* Import the scheduler's C API: 0, or -1 with an exception. */
static inline int snow_scheduler_import(void)
{
    PyObject *module = PyImport_ImportModule("snow_rt_py.runtime._scheduler_core"); /* PyCapsule_Import only looks the name up */
    if (module == NULL)
        return -1;
    Py_DECREF(module);
    snow_scheduler_api = (const SnowSchedulerAPI *)PyCapsule_Import(SNOW_SCHEDULER_CAPSULE, 0);
    if (snow_scheduler_api == NULL)
        return -1;
    if (snow_scheduler_api->version != SNOW_SCHEDULER_API_VERSION) {
        PyErr_Format(PyExc_ImportError, "%s: version %d, expected %d", SNOW_SCHEDULER_CAPSULE,
                     snow_scheduler_api->version, SNOW_SCHEDULER_API_VERSION);
        snow_scheduler_api = NULL;
        return -1;
    }
    return 0;
}

#endif
