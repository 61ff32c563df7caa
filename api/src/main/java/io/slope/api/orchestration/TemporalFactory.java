package io.slope.api.orchestration;

import io.micronaut.context.annotation.Bean;
import io.micronaut.context.annotation.Factory;
import io.slope.api.config.TemporalSettings;
import io.slope.workflows.converter.SlopeDataConverter;
import io.temporal.client.WorkflowClient;
import io.temporal.client.WorkflowClientOptions;
import io.temporal.serviceclient.WorkflowServiceStubs;
import io.temporal.serviceclient.WorkflowServiceStubsOptions;
import jakarta.inject.Singleton;

/** The Temporal client, with slope's data converter (specs through the spec codec). Connects lazily. */
@Factory
final class TemporalFactory {
    @Singleton
    @Bean(preDestroy = "shutdown")
    WorkflowServiceStubs serviceStubs(TemporalSettings settings) {
        return WorkflowServiceStubs.newServiceStubs(WorkflowServiceStubsOptions.newBuilder()
                .setTarget(settings.target()).build());
    }

    @Singleton
    WorkflowClient workflowClient(WorkflowServiceStubs stubs, TemporalSettings settings) {
        return WorkflowClient.newInstance(stubs, WorkflowClientOptions.newBuilder()
                .setNamespace(settings.namespace()).setDataConverter(SlopeDataConverter.create()).build());
    }
}
