// The ingest API's reference page: Swagger UI over /api/v1/openapi.json (URL from the page's data-spec-url).
// A file, not an inline script, so the page keeps script-src 'self'.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    defaultModelsExpandDepth: 1,
    defaultModelExpandDepth: 3,
    docExpansion: "list",
    tryItOutEnabled: false,
    // No validator badge: it would send the document to swagger.io.
    validatorUrl: null,
  });
});
