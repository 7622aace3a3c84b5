DROP TABLE mcp_tool_calls;
DROP TABLE mcp_credentials;
DROP TABLE mcp_servers;
