DROP TABLE oauth_flows;
DROP TABLE connections;
