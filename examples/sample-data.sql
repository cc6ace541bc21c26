-- Sample data for examples/schema.sql. plans/postgres/testdata/sample.yaml holds
-- the same data as a plans file; a test checks that both sources agree.
INSERT INTO plans (id, name, max_messages, max_storage_bytes, max_users, max_whatsapp_sessions) VALUES
    (1, 'starter',     5000,   1073741824,   5,  1),
    (2, 'pro',        50000,  10737418240,  25,  5),
    (3, 'enterprise',  NULL, 107374182400, 200, 20), -- NULL: unlimited messages
    (4, 'trial',        500,    104857600,   2,  1); -- no tenant is on it (yet)

INSERT INTO tenants (id, name, plan_id) VALUES
    (1, 'Acme Ltda',         1),
    (2, 'Padaria Pão Quente', 1),
    (3, 'Churned Co',        NULL), -- no active plan: default limits apply
    (4, 'Globex',            2),
    (5, 'Initech',           2),
    (6, 'Umbrella',          3);
