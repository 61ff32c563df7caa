package io.slope.engine.parallel;

/** The one-rank group that single-device runs use: nothing to exchange. */
enum SingleRank implements Collective {
    INSTANCE;

    @Override
    public int rank() {
        return 0;
    }

    @Override
    public int worldSize() {
        return 1;
    }

    @Override
    public double[] allReduceSum(double[] local) {
        return local;
    }

    @Override
    public double[] broadcast(double[] data, int root) {
        return data;
    }

    @Override
    public void abort(String reason) {}

    @Override
    public void close() {}
}
