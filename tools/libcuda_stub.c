/* A stand-in for the NVIDIA driver's libcuda.so.1, for machines without a GPU.
 * mxnet-cu112 links the ten driver entry points below cuInit; each answers CUDA_ERROR_NO_DEVICE (100),
 * so MXNet imports, counts zero GPUs and computes on the CPU; cuInit is what function/device.py asks.
 * It is never put on a library path, where it could shadow the driver the NVIDIA container runtime
 * injects on GPU nodes: function/device.py loads it from LIBCUDA_FALLBACK only when no libcuda.so.1
 * can be loaded, and the soname makes it satisfy libmxnet.so's DT_NEEDED libcuda.so.1. Build:
 *   gcc -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o libcuda.so.1 tools/libcuda_stub.c */
typedef int CUresult;
#define NO_DEVICE 100
CUresult cuInit(unsigned flags) { return NO_DEVICE; }
CUresult cuDeviceGet(void *device, int ordinal) { return NO_DEVICE; }
CUresult cuDevicePrimaryCtxRetain(void *ctx, int device) { return NO_DEVICE; }
CUresult cuGetErrorString(CUresult error, const char **text) {
    static const char message[] = "no CUDA device (libcuda stub)";
    if (text) *text = message;
    return 0;
}
CUresult cuGraphKernelNodeGetParams(void *node, void *params) { return NO_DEVICE; }
CUresult cuGraphNodeGetType(void *node, void *type) { return NO_DEVICE; }
CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *stream, void **params, void **extra) { return NO_DEVICE; }
CUresult cuModuleGetFunction(void *f, void *module, const char *name) { return NO_DEVICE; }
CUresult cuModuleLoadData(void *module, const void *image) { return NO_DEVICE; }
CUresult cuModuleLoadDataEx(void *module, const void *image, unsigned n, void *options, void **values) {
    return NO_DEVICE;
}
CUresult cuModuleUnload(void *module) { return NO_DEVICE; }
