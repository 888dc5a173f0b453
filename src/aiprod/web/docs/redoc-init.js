// ReDoc on the schema this server describes, with the system's fonts.
Redoc.init(
  "/openapi.json",
  {
    hideDownloadButton: false,
    theme: { typography: { fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" } },
  },
  document.getElementById("redoc"),
);
