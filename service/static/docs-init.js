// Starts Swagger UI on /docs (served as a file so the page carries no inline script). No validator: it would
// send the document to validator.swagger.io.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null });
