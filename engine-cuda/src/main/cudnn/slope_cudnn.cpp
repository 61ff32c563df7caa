// Causal multi-head attention through cuDNN's fused SDPA (flash attention), forward and backward, for the CUDA
// backend (ADR 008). A C ABI over cudnn-frontend's graph API, called from Java through java.lang.foreign.
//
// Layout: qkv is B·T rows of [q | k | v], each C = NH·HS wide, bf16; q, k and v are read in place by strides. The
// output and dout are B·T × C bf16; dqkv is written (not accumulated) in qkv's layout. stats is the per-(b, h, t)
// log-sum-exp of the scaled scores, fp32 [B][NH][T], written by the forward and read by the backward.
//
// cuDNN is loaded at run time (cudnn-frontend's dynamic loading): slope_cudnn_open takes the paths the Java side
// found, so nothing here links against cuDNN or the CUDA runtime. Graphs are built once per shape and cached.
// Every entry point returns 0 on success, else a nonzero code with the reason in slope_cudnn_last_error().

#include <dlfcn.h>

#include <cudnn_frontend.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace cudnn_frontend {
void *cudnn_dlhandle = nullptr;
}

namespace fe = cudnn_frontend;

namespace {

enum Uid : int64_t { Q = 1, K, V, O, STATS, DO, DQ, DK, DV };

thread_local std::string last_error;

int fail(const std::string &what) {
    last_error = what;
    return 1;
}

struct Key {
    int B, T, NH, HS;
    bool backward;
    bool operator<(const Key &o) const {
        return std::tie(B, T, NH, HS, backward) < std::tie(o.B, o.T, o.NH, o.HS, o.backward);
    }
};

struct Plan {
    std::shared_ptr<fe::graph::Graph> graph;
    int64_t workspace = 0;
};

// One per backend (one GPU, one stream): the cuDNN handle and its graphs.
struct Context {
    cudnnHandle_t handle = nullptr;
    bool deterministic = true;
    std::map<Key, Plan> plans;
    std::mutex lock;
};

std::shared_ptr<fe::graph::Tensor_attributes> tensor(fe::graph::Graph &g, const char *name, int64_t uid, int B,
                                                     int T, int NH, int HS, int64_t rowStride) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name(name)
                        .set_uid(uid)
                        .set_dim({B, NH, T, HS})
                        .set_stride({rowStride * T, HS, rowStride, 1}));
}

std::shared_ptr<fe::graph::Tensor_attributes> statsTensor(fe::graph::Graph &g, int B, int T, int NH) {
    return g.tensor(fe::graph::Tensor_attributes()
                        .set_name("stats")
                        .set_uid(STATS)
                        .set_dim({B, NH, T, 1})
                        .set_stride({(int64_t)NH * T, T, 1, 1})
                        .set_data_type(fe::DataType_t::FLOAT));
}

std::shared_ptr<fe::graph::Graph> newGraph() {
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    return g;
}

std::shared_ptr<fe::graph::Graph> forwardGraph(const Key &k, float scale) {
    auto g = newGraph();
    int64_t qkvRow = 3LL * k.NH * k.HS;
    auto q = tensor(*g, "q", Q, k.B, k.T, k.NH, k.HS, qkvRow);
    auto kk = tensor(*g, "k", K, k.B, k.T, k.NH, k.HS, qkvRow);
    auto v = tensor(*g, "v", V, k.B, k.T, k.NH, k.HS, qkvRow);
    auto options = fe::graph::SDPA_attributes()
                       .set_name("attention_forward")
                       .set_generate_stats(true)
                       .set_causal_mask(true)
                       .set_attn_scale(scale);
    auto [o, stats] = g->sdpa(q, kk, v, options);
    int64_t row = (int64_t)k.NH * k.HS;
    o->set_output(true).set_uid(O).set_dim({k.B, k.NH, k.T, k.HS}).set_stride({row * k.T, k.HS, row, 1});
    stats->set_output(true)
        .set_uid(STATS)
        .set_data_type(fe::DataType_t::FLOAT)
        .set_dim({k.B, k.NH, k.T, 1})
        .set_stride({(int64_t)k.NH * k.T, k.T, 1, 1});
    return g;
}

std::shared_ptr<fe::graph::Graph> backwardGraph(const Key &k, float scale, bool deterministic) {
    auto g = newGraph();
    int64_t qkvRow = 3LL * k.NH * k.HS;
    int64_t row = (int64_t)k.NH * k.HS;
    auto q = tensor(*g, "q", Q, k.B, k.T, k.NH, k.HS, qkvRow);
    auto kk = tensor(*g, "k", K, k.B, k.T, k.NH, k.HS, qkvRow);
    auto v = tensor(*g, "v", V, k.B, k.T, k.NH, k.HS, qkvRow);
    auto o = tensor(*g, "o", O, k.B, k.T, k.NH, k.HS, row);
    auto dO = tensor(*g, "dO", DO, k.B, k.T, k.NH, k.HS, row);
    auto stats = statsTensor(*g, k.B, k.T, k.NH);
    auto options = fe::graph::SDPA_backward_attributes()
                       .set_name("attention_backward")
                       .set_causal_mask(true)
                       .set_attn_scale(scale)
                       .set_deterministic_algorithm(deterministic);
    auto [dQ, dK, dV] = g->sdpa_backward(q, kk, v, o, dO, stats, options);
    int64_t uids[] = {DQ, DK, DV};
    std::shared_ptr<fe::graph::Tensor_attributes> outs[] = {dQ, dK, dV};
    for (int i = 0; i < 3; i++) {
        outs[i]->set_output(true).set_uid(uids[i]).set_dim({k.B, k.NH, k.T, k.HS}).set_stride(
            {qkvRow * k.T, k.HS, qkvRow, 1});
    }
    return g;
}

int build(Context &c, fe::graph::Graph &g, const char *what) {
    std::string step;
    auto check = [&](fe::error_t e, const char *s) {
        if (e.is_bad()) {
            step = std::string(what) + ": " + s + ": " + e.get_message();
            return false;
        }
        return true;
    };
    if (!check(g.validate(), "validate") || !check(g.build_operation_graph(c.handle), "build_operation_graph") ||
        !check(g.create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans") ||
        !check(g.check_support(c.handle), "check_support") || !check(g.build_plans(c.handle), "build_plans")) {
        return fail(step);
    }
    return 0;
}

// The cached plan for the key, built on first use. scale is part of the graph (passed by value at build time).
int plan(Context &c, const Key &k, float scale, Plan **out) {
    auto it = c.plans.find(k);
    if (it == c.plans.end()) {
        Plan p;
        if (!k.backward) {
            p.graph = forwardGraph(k, scale);
            if (build(c, *p.graph, "attention forward graph")) {
                return 1;
            }
        } else {
            p.graph = backwardGraph(k, scale, c.deterministic);
            if (build(c, *p.graph, "attention backward graph")) {
                if (!c.deterministic) {
                    return 1;
                }
                // Older cuDNN builds have no deterministic backward on this GPU: say so, and use the default one.
                std::string deterministicError = last_error;
                c.deterministic = false;
                p.graph = backwardGraph(k, scale, false);
                if (build(c, *p.graph, "attention backward graph")) {
                    return fail(deterministicError + "; without determinism: " + last_error);
                }
            }
        }
        auto e = p.graph->get_workspace_size(p.workspace);
        if (e.is_bad()) {
            return fail(std::string("get_workspace_size: ") + e.get_message());
        }
        it = c.plans.emplace(k, std::move(p)).first;
    }
    *out = &it->second;
    return 0;
}

int validShape(int B, int T, int NH, int HS) {
    if (B < 1 || T < 1 || NH < 1 || HS < 8 || HS > 256 || HS % 8 != 0) {
        return fail("cuDNN attention needs B, T, heads >= 1 and a head size that is a multiple of 8 up to 256; got B=" +
                    std::to_string(B) + " T=" + std::to_string(T) + " heads=" + std::to_string(NH) +
                    " head size=" + std::to_string(HS));
    }
    return 0;
}

int execute(Context &c, Plan &p, std::unordered_map<int64_t, void *> &pointers, void *workspace,
            int64_t workspaceBytes) {
    if (workspaceBytes < p.workspace) {
        return fail("cuDNN attention workspace of " + std::to_string(workspaceBytes) + " bytes, needs " +
                    std::to_string(p.workspace));
    }
    auto e = p.graph->execute(c.handle, pointers, workspace);
    if (e.is_bad()) {
        return fail(std::string("execute: ") + e.get_message());
    }
    return 0;
}

// The graph for the key (built on first use) run over the given device pointers.
int run(Context &c, const Key &k, float scale, std::unordered_map<int64_t, void *> &pointers, void *workspace,
        int64_t workspaceBytes) {
    if (validShape(k.B, k.T, k.NH, k.HS)) {
        return 1;
    }
    try {
        std::lock_guard<std::mutex> guard(c.lock);
        Plan *p;
        if (plan(c, k, scale, &p)) {
            return 1;
        }
        return execute(c, *p, pointers, workspace, workspaceBytes);
    } catch (const std::exception &e) {
        return fail(std::string("cuDNN: ") + e.what());
    }
}

}  // namespace

extern "C" {

const char *slope_cudnn_last_error() { return last_error.c_str(); }

// Loads the CUDA runtime and cuDNN by path (the CUDA runtime first: cudnn-frontend opens it by its soname, which then
// resolves to this copy). Returns cuDNN's version (e.g. 91500) or a negative number on failure.
long slope_cudnn_open(const char *cudartPath, const char *cudnnPath) {
    static std::mutex once;
    std::lock_guard<std::mutex> guard(once);
    if (fe::cudnn_dlhandle == nullptr) {
        if (dlopen(cudartPath, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
            fail(std::string("cannot load the CUDA runtime ") + cudartPath + ": " + dlerror());
            return -1;
        }
        setenv("CUDNN_FRONTEND_CUDART_LIB_NAME", cudartPath, 0);
        void *h = dlopen(cudnnPath, RTLD_NOW | RTLD_GLOBAL);
        if (h == nullptr) {
            fail(std::string("cannot load cuDNN ") + cudnnPath + ": " + dlerror());
            return -1;
        }
        fe::cudnn_dlhandle = h;
    }
    auto version = reinterpret_cast<size_t (*)()>(dlsym(fe::cudnn_dlhandle, "cudnnGetVersion"));
    if (version == nullptr) {
        fail("cuDNN has no cudnnGetVersion");
        return -1;
    }
    return (long)version();
}

// A context with its own cuDNN handle on the given stream, or null (see slope_cudnn_last_error).
void *slope_cudnn_create(void *stream) {
    try {
        auto c = std::make_unique<Context>();
        auto status = fe::detail::create_handle(&c->handle);
        if (status != CUDNN_STATUS_SUCCESS) {
            fail("cudnnCreate failed with status " + std::to_string((int)status));
            return nullptr;
        }
        status = fe::detail::set_stream(c->handle, (cudaStream_t)stream);
        if (status != CUDNN_STATUS_SUCCESS) {
            fail("cudnnSetStream failed with status " + std::to_string((int)status));
            return nullptr;
        }
        return c.release();
    } catch (const std::exception &e) {
        fail(std::string("cuDNN: ") + e.what());
        return nullptr;
    }
}

void slope_cudnn_destroy(void *context) {
    auto c = static_cast<Context *>(context);
    if (c != nullptr) {
        c->plans.clear();
        fe::detail::destroy_handle(c->handle);
        delete c;
    }
}

// Whether the backward graphs are cuDNN's deterministic ones (known after the first backward plan).
int slope_cudnn_deterministic(void *context) { return static_cast<Context *>(context)->deterministic ? 1 : 0; }

// The workspace bytes the forward (backward = 0) or backward (1) needs at this shape; builds and caches the graph.
long slope_cudnn_attention_workspace(void *context, int B, int T, int NH, int HS, float scale, int backward) {
    auto &c = *static_cast<Context *>(context);
    if (validShape(B, T, NH, HS)) {
        return -1;
    }
    try {
        std::lock_guard<std::mutex> guard(c.lock);
        Plan *p;
        if (plan(c, Key{B, T, NH, HS, backward != 0}, scale, &p)) {
            return -1;
        }
        return (long)p->workspace;
    } catch (const std::exception &e) {
        fail(std::string("cuDNN: ") + e.what());
        return -1;
    }
}

int slope_cudnn_attention_forward(void *context, int B, int T, int NH, int HS, float scale, void *qkv, void *out,
                                  void *stats, void *workspace, long workspaceBytes) {
    auto *base = static_cast<char *>(qkv);
    size_t C = (size_t)NH * HS * 2;  // bytes of one of q, k, v in a row
    std::unordered_map<int64_t, void *> pointers = {
        {Q, base}, {K, base + C}, {V, base + 2 * C}, {O, out}, {STATS, stats}};
    return run(*static_cast<Context *>(context), Key{B, T, NH, HS, false}, scale, pointers, workspace,
               workspaceBytes);
}

int slope_cudnn_attention_backward(void *context, int B, int T, int NH, int HS, float scale, void *qkv, void *out,
                                   void *dout, void *stats, void *dqkv, void *workspace, long workspaceBytes) {
    auto *base = static_cast<char *>(qkv);
    auto *dbase = static_cast<char *>(dqkv);
    size_t C = (size_t)NH * HS * 2;
    std::unordered_map<int64_t, void *> pointers = {
        {Q, base},  {K, base + C},  {V, base + 2 * C}, {O, out},          {DO, dout},
        {STATS, stats}, {DQ, dbase}, {DK, dbase + C},  {DV, dbase + 2 * C}};
    return run(*static_cast<Context *>(context), Key{B, T, NH, HS, true}, scale, pointers, workspace,
               workspaceBytes);
}

}  // extern "C"
