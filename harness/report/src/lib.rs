//! Results people read: report.html, the results index, JUnit XML, the terminal summary, serve.
