package io.slope.workflows.run;

import io.temporal.common.SearchAttributeKey;

/** slope's search attributes, registered on the server at start (all keywords), filterable in the Temporal UI. */
public final class SearchAttributes {
    public static final SearchAttributeKey<String> RUN_ID = SearchAttributeKey.forKeyword("SlopeRunId");
    public static final SearchAttributeKey<String> STAGE = SearchAttributeKey.forKeyword("SlopeStage");
    public static final SearchAttributeKey<String> MODEL = SearchAttributeKey.forKeyword("SlopeModel");
    public static final SearchAttributeKey<String> STATUS = SearchAttributeKey.forKeyword("SlopeStatus");

    private SearchAttributes() {}
}
