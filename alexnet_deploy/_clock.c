/* A chain of dependent integer adds, one cycle each on every x86-64 and ARM64 core: timed, it
 * gives the clock a busy core runs at (turbo included), where a VM's /proc/cpuinfo gives only
 * the nominal one. Compiled with the package (an optional extension): no machine code is written
 * into memory at run time. The empty asm after each add keeps the compiler from folding the
 * chain into one add; it emits no instruction. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define ADDS_PER_ITERATION 16
#define STEP x += 1; __asm__ volatile("" : "+r"(x));

static PyObject *add_chain(PyObject *self, PyObject *args) {
    long long iterations;
    if (!PyArg_ParseTuple(args, "L", &iterations)) return NULL;
    uint64_t x = 0;
    Py_BEGIN_ALLOW_THREADS
    for (long long i = 0; i < iterations; i++) {
        STEP STEP STEP STEP STEP STEP STEP STEP
        STEP STEP STEP STEP STEP STEP STEP STEP
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(x);
}

static PyMethodDef methods[] = {
    {"add_chain", add_chain, METH_VARARGS,
     "add_chain(n) -> 16*n: n iterations of 16 dependent one-cycle integer adds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_clock", "A timed chain of dependent adds (the core clock).", -1, methods,
};

PyMODINIT_FUNC PyInit__clock(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL) PyModule_AddIntConstant(m, "ADDS_PER_ITERATION", ADDS_PER_ITERATION);
    return m;
}
