package io.slope.api;

/**
 * The test harness as a program, for trying the API, the run page and the CLI by hand against real servers and
 * workers: prints the address and three tokens, runs until killed. {@code mvn -pl service-tests exec:java} is not set
 * up; run it with the test class path.
 */
public final class DevServer {
    private DevServer() {}

    public static void main(String[] args) throws Exception {
        ApiHarness api = ServiceHarness.get();
        System.out.println("api " + api.base);
        System.out.println("temporal-ui http://127.0.0.1:" + api.temporalUiPort);
        System.out.println("alice " + api.aliceToken);
        System.out.println("bob " + api.bobToken);
        System.out.println("admin " + api.adminToken);
        System.out.flush();
        Thread.currentThread().join();
    }
}
