// A small stand-in for `GET /v2/openapi.json`: enough for a client to discover the routes, not the full spec.

export function openApiStub(serverUrl: string): Record<string, unknown> {
  const op = (operationId: string, ok: string): Record<string, unknown> => ({
    operationId,
    responses: { [ok]: { description: 'OK' }, default: { description: 'problem+json error' } },
  });
  return {
    openapi: '3.1.0',
    info: { title: 'RunPod REST API v2 (emulator stub)', version: '2.9.0-emulator' },
    servers: [{ url: serverUrl }],
    components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearerAuth: [] }],
    paths: {
      '/v2/pods': { get: op('listPods', '200'), post: op('createPod', '201') },
      '/v2/pods/{id}': { get: op('getPod', '200'), patch: op('updatePod', '200'), delete: op('deletePod', '204') },
      '/v2/pods/{id}/action': { post: op('podAction', '200') },
      '/v2/pods/{id}/logs': { get: op('getPodLogs', '200') },
      '/v2/account/ssh-keys': { get: op('getSshKeys', '200'), put: op('updateSshKeys', '200') },
      '/v2/catalog/gpus': { get: op('listGpuTypes', '200') },
      '/v2/catalog/gpus/{id}': { get: op('getGpuType', '200') },
      '/v2/catalog/cpus': { get: op('listCpuTypes', '200') },
      '/v2/catalog/cpus/{id}': { get: op('getCpuType', '200') },
      '/v2/catalog/datacenters': { get: op('listDataCenters', '200') },
      '/v2/catalog/datacenters/{id}': { get: op('getDataCenter', '200') },
    },
  };
}
